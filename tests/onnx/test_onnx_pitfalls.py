"""``trtapps onnx check`` / ``fix`` on the committed torch exports of every export-guide rule (wrong and right).

The models and what each must show are in ``tests/data/onnx_pitfalls/manifest.json`` (made by its
``generate.py`` with torch 2.15). Wrong exports must be flagged with the rule at the recorded severity, right ones
must have no error and not the rule; the fixable wrong ones must come out of ``fix`` with no error left and the
same outputs at batch 1 and batch 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import onnx
from trtapps.cli import build_app
from trtapps.errors import UserError
from trtapps.onnx.check import SCHEMA, SEVERITIES, CheckReport, check_model
from trtapps.onnx.fix import FixError, fix_model

DATA = Path(__file__).resolve().parents[1] / "data" / "onnx_pitfalls"
MANIFEST = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["models"]
WRONG = sorted(n for n in MANIFEST if n.endswith("_wrong"))
RIGHT = sorted(n for n in MANIFEST if n.endswith("_right"))
FIXABLE = sorted(n for n, e in MANIFEST.items() if e.get("fix") is True)
UNFIXABLE = sorted(n for n, e in MANIFEST.items() if e.get("fix") is False)


def _rules(report: CheckReport) -> dict[str, str]:
    """rule → the most severe severity it was reported with."""
    worst: dict[str, str] = {}
    for f in report.findings:
        if f.rule not in worst or SEVERITIES.index(f.severity) < SEVERITIES.index(worst[f.rule]):
            worst[f.rule] = f.severity
    return worst


def test_every_rule_of_the_guide_has_a_wrong_and_a_right_export() -> None:
    rules = {e["rule"] for e in MANIFEST.values()}
    for rule in ("size() used without int()", "interpolate with size", "-1 on the batch axis",
                 "dynamic_axes on the batch only"):
        assert rule in rules
        kinds = {n.rsplit("_", 1)[1] for n, e in MANIFEST.items() if e["rule"] == rule}
        assert kinds == {"wrong", "right"}, rule
    assert all((DATA / f"{n}.onnx").stat().st_size < 16_000 for n in MANIFEST)  # tiny, committed


@pytest.mark.parametrize("name", WRONG)
def test_check_flags_the_pitfall_of_each_wrong_export(name: str) -> None:
    report = check_model(DATA / f"{name}.onnx")
    found = _rules(report)
    for rule, severity in MANIFEST[name]["expect"].items():
        assert found.get(rule) == severity, f"{name}: expected {rule} ({severity}), got {found}"
        flagged = [f for f in report.findings if f.rule == rule]
        assert all(f.message and f.fix for f in flagged)
        assert any(f.nodes or f.tensors for f in flagged)  # the finding names what is at fault
    if "error" in MANIFEST[name]["expect"].values():
        assert not report.ok  # the command exits non-zero


@pytest.mark.parametrize("name", RIGHT)
def test_check_finds_no_error_in_each_right_export(name: str) -> None:
    report = check_model(DATA / f"{name}.onnx")
    assert report.ok, [f.message for f in report.errors]
    found = _rules(report)
    assert not set(MANIFEST[name]["absent"]) & set(found), found


@pytest.mark.parametrize("name", FIXABLE)
def test_fix_repairs_each_fixable_export(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.onnx"
    result = fix_model(DATA / f"{name}.onnx", out, batch=3, images=[])
    assert out.is_file()
    assert result.dynamic
    assert result.after.ok
    assert result.verification.ok
    assert result.verification.batches == [1, 3]
    after = _rules(check_model(out))
    for rule in MANIFEST[name]["expect"]:
        assert rule not in after, f"{name}: {rule} still reported after fix: {after}"
    assert result.changes, "fix reports what it changed"
    # the fixed model really runs at a batch the proof did not use, image by image equal to batch 1
    fixed = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((5, 3, 32, 32), dtype=np.float32)
    batched = fixed.run(None, {"images": x})[0]
    single = np.concatenate([fixed.run(None, {"images": x[i : i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", UNFIXABLE)
def test_fix_refuses_what_it_cannot_prove_and_writes_nothing(name: str, tmp_path: Path) -> None:
    out = tmp_path / "fixed.onnx"
    with pytest.raises(FixError) as info:
        fix_model(DATA / f"{name}.onnx", out, batch=2, images=[])
    assert "\n" not in str(info.value)
    assert str(DATA / name) in str(info.value)
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either


def test_fix_keep_static_keeps_a_fixed_batch(tmp_path: Path) -> None:
    out = tmp_path / "static.onnx"
    result = fix_model(DATA / "upsample_size_static_wrong.onnx", out, keep_static=True, images=[])
    assert not result.dynamic
    assert result.verification.batches == [1]
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    report = check_model(out, dynamic_batch=False)
    assert report.ok
    assert all(f.severity == "info" for f in report.findings if f.batch_only)


def test_fix_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes((DATA / "fixed_batch_wrong.onnx").read_bytes())
    with pytest.raises(FixError, match="overwrite"):
        fix_model(src, src)


def test_check_reports_a_missing_file_as_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        check_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        check_model(bad)


# -- the CLI -------------------------------------------------------------------------------------------------------
def _cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


def test_cli_check_json_schema_and_exit_status() -> None:
    bad = _cli("onnx", "check", str(DATA / "reshape_batch_wrong.onnx"), "--json")
    assert bad.exit_code == 1
    doc = json.loads(bad.output)
    assert doc["schema"] == SCHEMA
    assert doc["ok"] is False
    assert set(doc) >= {"model", "opset", "inputs", "outputs", "batch", "counts", "findings"}
    assert doc["counts"]["error"] == sum(f["severity"] == "error" for f in doc["findings"]) > 0
    finding = next(f for f in doc["findings"] if f["rule"] == "reshape-batch")
    assert set(finding) >= {"rule", "severity", "message", "fix", "nodes", "tensors"}
    assert finding["nodes"]
    good = _cli("onnx", "check", str(DATA / "dynamic_axes_right.onnx"))
    assert good.exit_code == 0
    assert "ok for a dynamic-batch TensorRT build" in good.output


def test_cli_fix_writes_the_model_and_lists_the_changes(tmp_path: Path) -> None:
    out = tmp_path / "fixed.onnx"
    result = _cli("onnx", "fix", str(DATA / "reshape_batch_wrong.onnx"), "-o", str(out), "--batch", "2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["dynamic_batch"] is True
    assert doc["after"]["ok"] is True
    assert any(c["op"] == "Reshape" and "[-1, 8, 64]" in c["change"] for c in doc["changes"])
    assert all(o["ok"] for o in doc["verification"]["outputs"])
    assert out.is_file()


def test_cli_fix_refusal_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from trtapps.cli import main

    out = tmp_path / "fixed.onnx"
    with pytest.raises(SystemExit) as info:
        main(["onnx", "fix", str(DATA / "training_mode_wrong.onnx"), "-o", str(out)])
    assert info.value.code == 2
    assert not out.exists()
