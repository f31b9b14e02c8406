"""``check``/``fix`` on models they were not developed on: other structures that hide the pitfalls differently.

Built here with ``onnx.helper`` (torch is not a dependency), in the shapes the TorchScript exporter emits:

* a ViT-like attention block: patchify, a class token expanded to a baked batch and concatenated with the
  tokens, ``view(int(B), N, heads, d)`` reshapes around a transpose, a ``x.size(0)`` shape chain;
* a U-Net-like decoder exported with a fixed batch: ``F.interpolate(x, size=skip.shape[2:])`` (sizes computed
  from another tensor's shape) and a baked flatten before a softmax;
* a "normalise over the batch" block (ReduceMean over axis 0): a model whose outputs depend on the other images
  of the batch, which no rewrite can repair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import onnx
from onnx import TensorProto, helper, numpy_helper
from trtapps.onnx.check import check_model
from trtapps.onnx.fix import FixError, fix_model

RNG = np.random.default_rng(7)


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.2).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto], opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "unseen", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch",
                              producer_version="2.x")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def attention_model() -> onnx.ModelProto:
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w_patch"], ["patches"], strides=[4, 4], name="/patch/Conv"),  # [N, 16, 4, 4]
        # tokens = patches.view(patches.size(0), 16, -1).transpose(1, 2)
        n("Shape", ["patches"], ["p_shape"], name="/Shape"),
        n("Gather", ["p_shape", "zero"], ["p_b"], axis=0, name="/Gather"),
        n("Unsqueeze", ["p_b", "axes0"], ["p_b1"], name="/Unsqueeze"),
        n("Concat", ["p_b1", "c16_m1"], ["tok_shape"], axis=0, name="/Concat"),
        n("Reshape", ["patches", "tok_shape"], ["tok_t"], name="/Reshape"),
        n("Transpose", ["tok_t"], ["tokens"], perm=[0, 2, 1], name="/Transpose"),  # [N, 16, 16]
        # cls = self.cls.expand(int(x.size(0)), -1, -1): the export batch (1) is baked
        n("Expand", ["cls", "cls_shape"], ["cls_e"], name="/Expand"),
        n("Concat", ["cls_e", "tokens"], ["seq"], axis=1, name="/Concat_1"),  # [N, 17, 16]
        n("MatMul", ["seq", "wq"], ["q"], name="/q/MatMul"),
        n("MatMul", ["seq", "wk"], ["k"], name="/k/MatMul"),
        n("MatMul", ["seq", "wv"], ["v"], name="/v/MatMul"),
        # q.view(int(B), 17, 2, 8): baked; k and v use view(B, -1, 2, 8) exported as [0, -1, 2, 8]
        n("Reshape", ["q", "q_shape"], ["q4"], name="/q/Reshape"),
        n("Reshape", ["k", "kv_shape"], ["k4"], name="/k/Reshape"),
        n("Reshape", ["v", "kv_shape"], ["v4"], name="/v/Reshape"),
        n("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3], name="/q/Transpose"),
        n("Transpose", ["k4"], ["kh"], perm=[0, 2, 3, 1], name="/k/Transpose"),
        n("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3], name="/v/Transpose"),
        n("MatMul", ["qh", "kh"], ["scores"], name="/attn/MatMul"),
        n("Softmax", ["scores"], ["probs"], axis=-1, name="/attn/Softmax"),
        n("MatMul", ["probs", "vh"], ["ctx"], name="/attn/MatMul_1"),
        n("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3], name="/attn/Transpose"),
        n("Reshape", ["ctx_t", "out_shape"], ["merged"], name="/attn/Reshape"),  # view(int(B), 17, 16): baked
        n("Gather", ["merged", "zero"], ["cls_out"], axis=1, name="/head/Gather"),
        n("MatMul", ["cls_out", "w_head"], ["logits"], name="/head/MatMul"),
    ]
    inits = [
        _init("w_patch", _weights(16, 3, 4, 4)),
        _init("zero", np.asarray(0, dtype=np.int64)),
        _init("axes0", np.asarray([0], dtype=np.int64)),
        _init("c16_m1", np.asarray([16, -1], dtype=np.int64)),
        _init("cls", _weights(1, 1, 16)),
        _init("cls_shape", np.asarray([1, 1, 16], dtype=np.int64)),
        _init("wq", _weights(16, 16)), _init("wk", _weights(16, 16)), _init("wv", _weights(16, 16)),
        _init("q_shape", np.asarray([1, 17, 2, 8], dtype=np.int64)),
        _init("kv_shape", np.asarray([0, -1, 2, 8], dtype=np.int64)),
        _init("out_shape", np.asarray([1, 17, 16], dtype=np.int64)),
        _init("w_head", _weights(16, 5)),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        inits,
    )


def decoder_model() -> onnx.ModelProto:
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1"], ["e1c"], pads=[1, 1, 1, 1], name="/enc1/Conv"),
        n("Relu", ["e1c"], ["e1"], name="/enc1/Relu"),  # [1, 8, 16, 16]
        n("Conv", ["e1", "w2"], ["e2c"], pads=[1, 1, 1, 1], strides=[2, 2], name="/enc2/Conv"),
        n("Relu", ["e2c"], ["e2"], name="/enc2/Relu"),  # [1, 8, 8, 8]
        # F.interpolate(e2, size=e1.shape[2:]): sizes = shape(e2)[:2] ++ shape(e1)[2:]
        n("Shape", ["e2"], ["s2"], name="/up/Shape"),
        n("Slice", ["s2", "i0", "i2"], ["s2_nc"], name="/up/Slice"),
        n("Shape", ["e1"], ["s1"], name="/up/Shape_1"),
        n("Slice", ["s1", "i2", "i4"], ["s1_hw"], name="/up/Slice_1"),
        n("Concat", ["s2_nc", "s1_hw"], ["sizes"], axis=0, name="/up/Concat"),
        n("Resize", ["e2", "", "", "sizes"], ["up"], mode="nearest", coordinate_transformation_mode="asymmetric",
          nearest_mode="floor", name="/up/Resize"),
        n("Add", ["up", "e1"], ["d"], name="/dec/Add"),
        n("Conv", ["d", "w3"], ["logits4"], name="/dec/Conv"),  # [1, 2, 16, 16]
        n("Reshape", ["logits4", "flat"], ["logits"], name="/dec/Reshape"),  # view(1, 2, -1): baked
        n("Softmax", ["logits"], ["probs"], axis=1, name="/dec/Softmax"),
    ]
    inits = [
        _init("w1", _weights(8, 4, 3, 3)), _init("w2", _weights(8, 8, 3, 3)), _init("w3", _weights(2, 8, 1, 1)),
        _init("i0", np.asarray([0], dtype=np.int64)), _init("i2", np.asarray([2], dtype=np.int64)),
        _init("i4", np.asarray([4], dtype=np.int64)), _init("flat", np.asarray([1, 2, -1], dtype=np.int64)),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 2, 256])],
        inits,
        opset=13,
    )


def batch_mixing_model() -> onnx.ModelProto:
    n = helper.make_node
    nodes = [
        n("Gemm", ["x", "w", "b"], ["h"], transB=1, name="/fc/Gemm"),
        n("ReduceMean", ["h"], ["mu"], axes=[0], keepdims=1, name="/norm/ReduceMean"),  # over the batch
        n("Sub", ["h", "mu"], ["y"], name="/norm/Sub"),
    ]
    inits = [_init("w", _weights(8, 6)), _init("b", _weights(8))]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        inits,
        opset=13,
    )


def _rules(report: object) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in report.findings:  # type: ignore[attr-defined]
        found.setdefault(f.rule, []).append(f.severity)
    return found


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _per_image(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batched = session.run(None, {name: x})[0]
    single = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    return batched, single


def test_attention_block_pitfalls_are_found(tmp_path: Path) -> None:
    report = check_model(_save(attention_model(), tmp_path / "attn.onnx"))
    found = _rules(report)
    assert found["reshape-batch"] == ["error", "error"]
    baked = [f for f in report.findings if f.rule == "batch-baked"]
    assert any("/Concat_1" in f.nodes and "/Expand" in f.nodes for f in baked)  # the token baked by int(B)
    chains = [f for f in report.findings if f.rule == "shape-chain"]
    assert [f.nodes[0] for f in chains] == ["/Reshape"]
    assert "reads the batch" in chains[0].message
    assert not report.ok
    kv = [f for f in report.findings if f.rule == "reshape-minus-one"]
    assert {f.nodes[0] for f in kv} == {"/k/Reshape", "/v/Reshape"}  # [0, -1, 2, 8] works: info only
    assert all(f.severity == "info" for f in kv)


def test_attention_block_is_fixed_and_equivalent(tmp_path: Path) -> None:
    src = _save(attention_model(), tmp_path / "attn.onnx")
    out = tmp_path / "attn_fixed.onnx"
    result = fix_model(src, out, batch=3)
    assert result.after.ok
    changed = {c.node: c.change for c in result.changes}
    assert "[-1, 17, 2, 8]" in changed["/q/Reshape"]
    assert "[-1, 17, 16]" in changed["/attn/Reshape"]
    assert "batch of 'tokens'" in changed["/Expand"]
    x = np.random.default_rng(3).random((4, 3, 16, 16), dtype=np.float32)
    batched, single = _per_image(out, x)
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    original = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    for i in range(4):  # the original is right at batch 1 (its export batch) only
        np.testing.assert_allclose(single[i], original.run(None, {"x": x[i : i + 1]})[0][0], rtol=0, atol=1e-5)


def test_decoder_with_fixed_batch_is_found_and_fixed(tmp_path: Path) -> None:
    src = _save(decoder_model(), tmp_path / "dec.onnx")
    report = check_model(src)
    found = _rules(report)
    assert found["batch-fixed"] == ["error"]
    assert found["reshape-batch"] == ["error"]
    assert found["resize-sizes"] == ["warning"]  # computed from another tensor's shape: size= was used
    out = tmp_path / "dec_fixed.onnx"
    result = fix_model(src, out, batch=2)
    assert result.after.ok
    assert not {"resize-sizes", "shape-chain"} & set(_rules(result.after))
    resize = next(n for n in onnx.load(str(out)).graph.node if n.op_type == "Resize")
    assert len(resize.input) == 3  # sizes became scales
    batched, single = _per_image(out, np.random.default_rng(4).random((3, 4, 16, 16), dtype=np.float32))
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)


def test_batch_mixing_is_an_error_fix_cannot_repair(tmp_path: Path) -> None:
    src = _save(batch_mixing_model(), tmp_path / "mix.onnx")
    report = check_model(src)
    mixed = [f for f in report.findings if f.rule == "batch-baked"]
    assert [f.nodes for f in mixed] == [["/norm/ReduceMean"]]
    assert mixed[0].severity == "error"
    assert "across the batch axis" in mixed[0].message
    with pytest.raises(FixError, match="ReduceMean"):
        fix_model(src, tmp_path / "out.onnx", batch=2)
    assert not (tmp_path / "out.onnx").exists()


def _tiny(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], *, opset: int = 17,
          domain: str | None = None, out_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [helper.make_tensor_value_info("y", out_type, None)], inits,
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize(
    ("case", "rule", "severity"),
    [
        ("contrib-op", "domain", "error"),
        ("old-opset", "opset", "error"),
        ("new-opset", "opset", "warning"),
        ("cubic-resize", "op-restriction", "error"),
        ("topk-large", "op-restriction", "error"),
        ("uint8-qdq", "quantization", "error"),
        ("double-io", "double", "error"),
        ("loop", "control-flow", "warning"),
        ("invalid-attribute", "invalid-model", "error"),
    ],
)
def test_operator_type_and_opset_rules(case: str, rule: str, severity: str) -> None:
    n = helper.make_node
    scales = _init("scales", np.asarray([1, 1, 2, 2], dtype=np.float32))
    if case == "contrib-op":
        model = _tiny([n("FusedConv", ["x", "w"], ["y"], domain="com.microsoft", activation="Relu")],
                      [_init("w", _weights(4, 4, 1, 1))], domain="com.microsoft")
    elif case in ("old-opset", "new-opset"):
        model = _tiny([n("Relu", ["x"], ["y"])], [], opset=8 if case == "old-opset" else 25)
    elif case == "cubic-resize":
        model = _tiny([n("Resize", ["x", "", "scales"], ["y"], mode="cubic")], [scales])
    elif case == "topk-large":
        model = _tiny([n("Flatten", ["x"], ["f"]), n("TopK", ["f", "k"], ["y", "i"], axis=1)],
                      [_init("k", np.asarray([4000], dtype=np.int64))])
    elif case == "uint8-qdq":
        model = _tiny([n("QuantizeLinear", ["x", "s", "zp"], ["q"]), n("DequantizeLinear", ["q", "s", "zp"], ["y"])],
                      [_init("s", np.asarray(0.1, dtype=np.float32)), _init("zp", np.asarray(128, dtype=np.uint8))])
    elif case == "invalid-attribute":  # per-channel DequantizeLinear (axis) needs opset 13
        model = _tiny([n("DequantizeLinear", ["q", "s", "zp"], ["w"], axis=0), n("Add", ["x", "w"], ["y"])],
                      [_init("q", np.zeros((4, 1, 1), dtype=np.int8)), _init("s", np.ones(4, dtype=np.float32)),
                       _init("zp", np.zeros(4, dtype=np.int8))], opset=11)
    elif case == "double-io":
        model = _tiny([n("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)], [], out_type=TensorProto.DOUBLE)
    else:
        body = helper.make_graph(
            [n("Identity", ["cond_in"], ["cond_out"]), n("Relu", ["v_in"], ["v_out"])], "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)],
        )
        model = _tiny([n("Loop", ["trip", "cond", "x"], ["y"], body=body)],
                      [_init("trip", np.asarray(3, dtype=np.int64)), _init("cond", np.asarray(True))])
    report = check_model(model)
    flagged = [f for f in report.findings if f.rule == rule]
    assert flagged, [(f.rule, f.message) for f in report.findings]
    assert flagged[0].severity == severity
    assert flagged[0].fix
