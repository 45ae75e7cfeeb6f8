from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from grokscope import ConfigError, LogConfig
from grokscope.tracking import sinks
from grokscope.tracking.sinks import (
    JsonlTracker,
    MultiTracker,
    TensorBoardTracker,
    WandbTracker,
    build_trackers,
    check_sinks,
)

CONFIG = {"name": "t", "task": {"kind": "modular", "p": 97}, "optim": {"lr": 0.001}}
METRICS = [  # (step, values) as the training loop logs them
    (s, {"train_acc": 0.1 * s, "test_acc": 0.05 * s, "train_loss": 2.0 - 0.1 * s,
         "test_loss": 3.0 - 0.1 * s, "weight_norm": 40.0 + s, "lr": 1e-3, "elapsed": 0.25 * s})
    for s in (0, 1, 2, 5)
]
TAGS = {"train_acc": "accuracy/train", "test_acc": "accuracy/test", "train_loss": "loss/train",
        "test_loss": "loss/test", "weight_norm": "weight_norm", "lr": "lr", "elapsed": "time/elapsed"}
SUMMARY = {"status": "completed", "steps_done": 5, "wall_seconds": 1.5,
           "final": {"train_acc": 1.0, "test_acc": 0.25, "train_loss": 0.01, "test_loss": None},
           "events": {"memorized_step": 5, "generalized_step": None, "train_0.99": 5},
           "task": {"p": 97}}


def _drive(tracker, run_dir: Path) -> None:
    """start, log METRICS, one event, finish: what a training run does."""
    tracker.start(CONFIG, run_dir)
    for step, values in METRICS:
        tracker.log(values, step)
    tracker.event("memorized", 5, "train acc reached 0.99")
    tracker.finish(SUMMARY)


# --- jsonl ---------------------------------------------------------------------------------

def test_jsonl_writes_metrics_step_first_and_events(tmp_path):
    _drive(JsonlTracker(tmp_path), tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [list(r)[0] for r in lines] == ["step"] * len(METRICS)
    assert lines == [{"step": s, **v} for s, v in METRICS]
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events == [{"step": 5, "name": "memorized", "message": "train acc reached 0.99"}]


# --- TensorBoard: read the event files back ------------------------------------------------

def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecords(path: Path):
    """Payloads of a TFRecord file: [u64 len][u32 masked crc(len)][data][u32 masked crc(data)]."""
    data, pos = path.read_bytes(), 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,), (len_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[pos + 8:pos + 12])
        assert len_crc == _masked_crc(header)
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert data_crc == _masked_crc(payload)
        yield payload
        pos += 16 + length


def _read_tensorboard(logdir: Path):
    """(scalars {(tag, step): value}, texts {(tag, step): str}) from every event file in logdir."""
    from tensorboardX.proto import event_pb2

    scalars, texts = {}, {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event files in {logdir}"
    for f in files:
        for payload in _tfrecords(f):
            ev = event_pb2.Event.FromString(payload)
            for v in ev.summary.value:
                if v.HasField("simple_value"):
                    scalars[(v.tag, ev.step)] = v.simple_value
                elif v.metadata.plugin_data.plugin_name == "text":
                    texts[(v.tag, ev.step)] = v.tensor.string_val[0].decode()
    return scalars, texts


def test_tensorboard_scalars_events_and_config_are_in_the_event_files(tmp_path):
    pytest.importorskip("tensorboardX")
    _drive(TensorBoardTracker(), tmp_path)
    scalars, texts = _read_tensorboard(tmp_path / "tensorboard")
    expected = {(TAGS[k], s): v for s, values in METRICS for k, v in values.items()}
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, rel=1e-6), key  # simple_value is float32
    assert texts[("events/text_summary", 5)] == "memorized: train acc reached 0.99"
    config_text = texts[("config/text_summary", 0)]
    assert config_text.startswith("```json\n") and config_text.endswith("\n```")
    assert json.loads(config_text[len("```json\n"):-len("\n```")]) == CONFIG


def test_unknown_metric_keys_go_under_metrics(tmp_path):
    pytest.importorskip("tensorboardX")
    t = TensorBoardTracker()
    t.start({}, tmp_path)
    t.log({"grad_norm": 3.0, "step": 7}, 7)  # a stray "step" key is not a metric
    t.finish({})
    scalars, _ = _read_tensorboard(tmp_path / "tensorboard")
    assert scalars == {("metrics/grad_norm", 7): 3.0}


# --- W&B offline: read the .wandb transaction log back -------------------------------------

def _wandb_records(path: Path):
    """Records of a .wandb file: a 7-byte ':W&B' header, then LevelDB-log chunks in 32 KiB blocks
    ([u32 crc][u16 len][u8 type: 1 full, 2 first, 3 middle, 4 last][data]) of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, buf = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:  # block trailer: zero padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(buf)
            buf = b""


def _read_until_run(log: Path, timeout: float = 20.0):
    """wandb's service process may still be flushing the file under heavy load: poll for the run record."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(_wandb_records(log))
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        if runs or time.monotonic() > deadline:
            return records, runs
        time.sleep(0.2)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_run_writes_history_config_and_summary(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    for name in ("a", "b"):  # two runs in one process must not clash
        run_dir = tmp_path / name
        run_dir.mkdir()
        _drive(WandbTracker(project="grokscope-test", mode="offline"), run_dir)
        (offline,) = (run_dir / "wandb").glob("offline-run-*")
        (log,) = offline.glob("run-*.wandb")

        records, runs = _read_until_run(log)
        assert runs[0].project == "grokscope-test" and runs[0].display_name == name
        config = {u.key: json.loads(u.value_json) for u in runs[0].config.update}
        assert {k: config[k] for k in CONFIG} == CONFIG

        history = {}
        for r in records:
            if r.WhichOneof("record_type") == "history":
                row = {_key(i): json.loads(i.value_json) for i in r.history.item}
                history[row["_step"]] = row
        assert sorted(history) == [s for s, _ in METRICS]
        for step, values in METRICS:
            for k, v in values.items():
                assert history[step][TAGS[k]] == pytest.approx(v), (step, k)
        assert history[5]["events/memorized"] == 5

        summary = {}
        for r in records:
            if r.WhichOneof("record_type") == "summary":
                summary.update({_key(u): json.loads(u.value_json) for u in r.summary.update})
        assert summary["final/test_acc"] == 0.25 and summary["final/train_acc"] == 1.0
        assert summary["events/memorized_step"] == 5 and summary["events/train_0.99"] == 5
        assert summary["status"] == "completed" and summary["steps_done"] == 5
        assert "final/test_loss" not in summary and "events/generalized_step" not in summary
        assert "task/p" not in summary
    assert not list((tmp_path / "wandb_home").rglob("*run-*"))  # dir=RUN wins over WANDB_DIR


@pytest.mark.parametrize("version, expected", [("0.16.6", True), ("0.19.9", True),
                                               ("0.19.10", "create_new"), ("0.31.0+15f8cbc", "create_new")])
def test_wandb_reinit_option_depends_on_the_version(version, expected):
    assert sinks._reinit(version) == expected


# --- config checks and building -----------------------------------------------------------

def test_check_sinks_names_the_missing_backend(monkeypatch):
    monkeypatch.setattr(sinks, "is_tensorboard_available", lambda: False)
    monkeypatch.setattr(sinks, "is_wandb_available", lambda: False)
    check_sinks(LogConfig())  # nothing enabled, nothing needed
    with pytest.raises(ConfigError, match=r"^log\.tensorboard: .*grokscope\[tb\]"):
        check_sinks(LogConfig(tensorboard=True))
    with pytest.raises(ConfigError, match=r"^log\.wandb: .*grokscope\[wandb\]"):
        check_sinks(LogConfig(wandb=True))
    with pytest.raises(ConfigError, match=r"^log\.wandb"):
        build_trackers(LogConfig(wandb=True), Path("unused"))


def test_build_trackers_follows_the_config(tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "is_tensorboard_available", lambda: True)
    monkeypatch.setattr(sinks, "is_wandb_available", lambda: True)
    assert [t.name for t in build_trackers(LogConfig(), tmp_path)] == ["jsonl"]
    cfg = LogConfig(tensorboard=True, wandb=True, wandb_project="p", wandb_mode="online")
    trackers = build_trackers(cfg, tmp_path)
    assert [t.name for t in trackers] == ["jsonl", "tensorboard", "wandb"]
    assert (trackers[2].project, trackers[2].mode) == ("p", "online")


# --- MultiTracker ---------------------------------------------------------------------------

class _Recorder:
    def __init__(self, name: str, fail_on: str | None = None):
        self.name, self.fail_on, self.calls = name, fail_on, []

    def _do(self, method, *args):
        self.calls.append((method, *args))
        if method == self.fail_on:
            raise OSError("disk full")

    def start(self, config, run_dir):
        self._do("start", config)

    def log(self, values, step):
        self._do("log", step)

    def event(self, name, step, message):
        self._do("event", name)

    def finish(self, summary):
        self._do("finish")


def test_multitracker_disables_a_failing_sink_with_one_warning(tmp_path):
    good, bad = _Recorder("good"), _Recorder("tensorboard", fail_on="log")
    multi = MultiTracker([good, bad])
    multi.start({}, tmp_path)
    with pytest.warns(RuntimeWarning, match="tensorboard.*log.*disk full") as record:
        for step in range(3):
            multi.log({"train_acc": 1.0}, step)
    assert len(record) == 1
    multi.event("memorized", 2, "m")
    multi.finish({})
    assert good.calls == [("start", {}), ("log", 0), ("log", 1), ("log", 2), ("event", "memorized"),
                          ("finish",)]
    assert bad.calls == [("start", {}), ("log", 0)]  # disabled after its first failure


def test_multitracker_propagates_jsonl_errors(tmp_path):
    multi = MultiTracker([_Recorder("jsonl", fail_on="event"), _Recorder("other")])
    with pytest.raises(OSError, match="disk full"):
        multi.event("memorized", 1, "m")


def test_tensorboard_command_reads_the_run_directory(tmp_path):
    """`pip install grokscope[tb]` gives the `tensorboard` command the docs use on RUN's parent."""
    import os
    import shutil
    import subprocess
    import sys

    pytest.importorskip("tensorboardX")
    pytest.importorskip("tensorboard")
    exe = shutil.which("tensorboard", path=os.path.dirname(sys.executable))
    assert exe, "the tb extra installs the tensorboard command"
    run = tmp_path / "runs" / "r1"
    t = TensorBoardTracker()
    t.start({"name": "r1"}, run)
    t.log({"train_acc": 0.5, "test_acc": 0.25}, 3)
    t.finish({})
    out = subprocess.run([exe, "--inspect", "--logdir", str(tmp_path / "runs")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy/train" in out.stdout and "accuracy/test" in out.stdout
