"""The modality registry: built-ins via entry points, runtime registration, clear failures."""
import pytest

from onellm import ModalitySpec, get_modality, list_modalities, register_modality
from onellm.tokenizers.imu import IMUTokenizer


def test_builtins_come_from_entry_points():
    assert {"image", "video", "audio", "point", "depth", "normal", "imu", "fmri"} <= set(list_modalities())
    assert get_modality("depth").official_name == "rgbd"


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'imu' is already registered by onellm-any"):
        register_modality(ModalitySpec(name="imu", tokenizer=IMUTokenizer))


def test_unknown_modality_lists_installed():
    with pytest.raises(KeyError, match="unknown modality 'sonar'; installed: .*image"):
        get_modality("sonar")
