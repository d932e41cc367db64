"""ecg: a 12-lead electrocardiogram as a ninth onellm modality, installed as a plugin."""

from onellm import ModalitySpec

from .synth import synthesize
from .tokenizer import ECGTokenizer, load_ecg, preview

ECG = ModalitySpec(
    name="ecg",
    tokenizer=ECGTokenizer,
    load=load_ecg,
    extensions=(".ecg.npy", ".ecg.csv"),
    prompt="Describe the heart rhythm in this ECG.",
    description="12-lead ECG, 10 s at 500 Hz, through a strided Conv1d",
    synthesize=synthesize,
    preview=preview,
)
