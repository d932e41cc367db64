"""The synthetic world: the driver (`world`) and the vocabulary and geometry that several
modalities' synthesizers share (`common`); each synthesizer lives with its modality."""
