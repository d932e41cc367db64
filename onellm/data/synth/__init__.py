"""The synthetic eight-modality world: one generator module per modality, and the driver."""
