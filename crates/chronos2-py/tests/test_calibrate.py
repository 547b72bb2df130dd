"""``chronos2.calibrate()`` measures this machine (quick settings, the tiny test model) and writes
the profile ``auto`` reads: in ``$XDG_CONFIG_HOME/chronos2/profile.json``, with the CPU model and
the thread count it was measured with. HOME and the XDG directories are private to the test, so
the user's profile is never touched."""

import json

import chronos2
from conftest import ROOT

TINY = ROOT / "tests" / "fixtures" / "models" / "tiny"


def test_calibrate_writes_the_profile_of_this_machine(tmp_path, monkeypatch):
    config = tmp_path / "config"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CHRONOS2_PROFILE", raising=False)
    monkeypatch.delenv("CHRONOS2_BACKEND", raising=False)

    result = chronos2.calibrate(model=str(TINY))

    profile = config / "chronos2" / "profile.json"
    assert result["path"] == str(profile)
    assert profile.is_file()
    assert result["seconds"] > 0
    # Nothing else was written: the private HOME stays empty, the cache too.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]

    written = json.loads(profile.read_text())
    assert written["source"] == result["source"]
    machine = written["machine"]
    assert machine["processor"], machine
    assert machine["threads"] >= 1, machine
    assert isinstance(machine["features"], list), machine
    # The machine the call reports is the one written: "<CPU model>, <os> <arch>, <n> threads".
    assert result["machine"] == f"{machine['processor']}, {machine['os']} {machine['arch']}, {machine['threads']} threads"
    # Every precision the CPU backend runs is measured on it, in the quick shapes.
    entries = written["entries"]
    for precision in ["fp32", "bf16", "int8", "int4", "w8a8"]:
        timed = [e for e in entries if e["precision"] == precision]
        assert timed, precision
        for entry in timed:
            assert entry["shape"]["rows"] <= 8 and entry["shape"]["context"] <= 512, entry
            cpu = [t for t in entry["timings"] if t["route"] == "cpu"]
            assert cpu and cpu[0]["median_ms"] > 0, entry
