"""The registries: built-ins via entry points, runtime registration, clear failures; one
helper serves modalities, eval tasks and converters."""

from importlib.metadata import EntryPoint

import pytest

from onellm import ModalitySpec, get_modality, list_modalities, register_modality
from onellm.registry import MODALITIES, Registry, UnknownName
from onellm.tokenizers.imu import IMUTokenizer


def test_builtins_come_from_entry_points():
    assert {"image", "video", "audio", "point", "depth", "normal", "imu", "fmri"} <= set(list_modalities())
    assert get_modality("depth").official_name == "rgbd"
    assert MODALITIES.source("imu") == "onellm-any"


def test_builtin_specs_hold_callables_not_module_paths():
    for name in ("image", "video", "audio", "point", "depth", "normal", "imu", "fmri"):
        spec = get_modality(name)
        assert callable(spec.load) and callable(spec.synthesize) and callable(spec.preview), name
        # One unit: the synthesizer and preview live in the modality's own module.
        assert (
            spec.synthesize.__module__ == spec.preview.__module__ == spec.load.__module__ == f"onellm.tokenizers.{name}"
        ), name


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'imu' is already registered by onellm-any"):
        register_modality(ModalitySpec(name="imu", tokenizer=IMUTokenizer))


def test_unknown_modality_lists_installed():
    with pytest.raises(KeyError, match="unknown modality 'sonar'; installed: .*image"):
        get_modality("sonar")


def test_a_registry_discovers_reports_failures_and_registers_at_runtime(monkeypatch):
    found = {
        "onellm.things": [
            EntryPoint("dumps", "json:dumps", "onellm.things"),
            EntryPoint("broken", "no_such_module_for_onellm:THING", "onellm.things"),
            EntryPoint("wrong", "json:JSONDecodeError", "onellm.things"),
        ]
    }
    monkeypatch.setattr("onellm.registry.entry_points", lambda group: found.get(group, []))

    def functions(name, obj):
        if not callable(obj) or isinstance(obj, type):
            raise TypeError(f"{name} is not a function")
        return [(name, obj)]

    things = Registry("onellm.things", "thing", functions, hint="; install one")
    with pytest.warns(UserWarning) as warned:
        assert things.names() == ["dumps"]
    assert sorted(str(w.message).split(" (")[0] for w in warned) == [
        "thing plugin 'broken' could not be loaded",
        "thing plugin 'wrong' could not be loaded",
    ]
    assert set(things.failures()) == {"broken", "wrong"} and "ModuleNotFoundError" in things.failures()["broken"]
    assert things.get("dumps")([1]) == "[1]" and "dumps" in things and list(things) == ["dumps"]
    with pytest.raises(RuntimeError, match="'wrong' is installed but failed to load: .*not a function"):
        things.get("wrong")
    with pytest.raises(UnknownName, match=r"^unknown thing 'nope'; installed: dumps; install one$") as err:
        things.get("nope")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)

    things.register("loads", len, source="notebook")
    assert things.source("loads") == "notebook" and things.items() == {"dumps": things.get("dumps"), "loads": len}
    with pytest.raises(ValueError, match="'loads' is already registered by notebook"):
        things.register("loads", len)
    things.unregister("loads")
    assert things.names() == ["dumps"]


def test_autoload_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("ONELLM_DISABLE_PLUGIN_AUTOLOAD", "1")
    things = Registry("onellm.modalities", "modality", lambda name, spec: [(name, spec)])
    assert things.names() == []
