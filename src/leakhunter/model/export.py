"""ONNX export of a trained model, front-end included, and the scorer that runs it.

:func:`export_onnx` turns ``best.pt`` into one ONNX graph that maps raw long segments
``waveform`` float32 ``[batch, segment_samples]`` (full scale 1.0, at the model's sample rate)
to ``class_probabilities`` float32 ``[batch, n_classes]`` and ``leak_probability`` float32
``[batch]``. It proves the graph against the PyTorch path (:class:`LogMel` + :class:`LeakCNN`)
in onnxruntime before keeping it, and writes ``model_card.json`` beside it: what a deployment
needs to cut recordings into segments and turn probabilities into decisions.
:class:`OnnxScorer` loads such a graph and its card and scores segments.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

from .. import __version__
from ..config import FeatureConfig, SynthConfig
from ..errors import InputError, LeakhunterError
from ..recordings.features import LogMel
from ..recordings.synth import synth
from ..runtime import devices, safe_write
from ..runtime.safe_write import file_sha256, guard
from .card import ModelCard, load_model, onnx_card
from .checkpoint import CheckpointError
from .cnn import LeakCNN

log = logging.getLogger(__name__)

OPSET = 18
TOLERANCE = 1e-4  # max abs probability difference between ONNX and PyTorch
INPUT = "waveform"
OUTPUTS = ("class_probabilities", "leak_probability")
CARD_NAME = "model_card.json"
BATCH = 4096  # segments per onnxruntime call: 32 MiB of input, bounded memory
PROVIDERS = ["CPUExecutionProvider"]


class ExportError(LeakhunterError):
    """A model cannot be exported (parity failure, unusable checkpoint), or an exported
    model cannot be loaded (missing card, a graph that does not match it)."""


class OnnxFrontEnd(nn.Module):
    """:class:`LogMel` without complex tensors: waveform ``[B, segment_samples]`` to log-mel
    dB ``[B, n_mels, frames]``.

    Framing is a Gather of constant sample indices (``[frames, n_fft]``); Hann window and
    real DFT are one MatMul with the window times cos and sin of each rfft bin
    (``[n_fft, 2 * n_freq]``), so column ``k`` of frame ``t`` is the real (or imaginary, up
    to sign) part of bin ``k``. One large GEMM is what onnxruntime's CPU kernels do best:
    it gave 1.06-1.09x the throughput of the same basis as a strided Conv1d (CPU time,
    one thread, 16-1024 segments per call), and ``torch.stft(return_complex=False)``
    (exported as STFT) is deprecated and was slower still. Mel matmul and dB floor are
    :class:`LogMel`'s own code.
    """

    def __init__(self, front_end: LogMel):
        super().__init__()
        cfg = front_end.cfg
        self.front_end, self.n_freq = front_end, cfg.n_fft // 2 + 1
        n = np.arange(cfg.n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.n_fft)  # periodic Hann, as LogMel
        # (k * n) mod n_fft keeps the angles exact integers before the float64 trig
        angle = 2 * np.pi * ((np.arange(self.n_freq)[:, None] * n) % cfg.n_fft) / cfg.n_fft
        basis = np.concatenate([np.cos(angle), np.sin(angle)]) * window  # [2F, n_fft]
        self.register_buffer("basis_t", torch.from_numpy(basis.T.astype(np.float32).copy()),
                             persistent=False)
        index = np.arange(cfg.frames_per_segment)[:, None] * cfg.frame_hop + n
        self.register_buffer("index", torch.from_numpy(index), persistent=False)
        # Where the hop divides the frame length (the default half overlap), a frame is
        # `per_frame` consecutive blocks of `hop` samples: framing is then a Reshape, a few
        # Slices and a Concat (plain copies), not a Gather of 3,584 indices per segment,
        # which took 4 % of onnxruntime's time. The frames, hence the output, are the same.
        hop, self.frames = cfg.frame_hop, cfg.frames_per_segment
        used = (self.frames - 1) * hop + cfg.n_fft  # samples the frames cover
        self.blocks = (used // hop, hop) if cfg.n_fft % hop == 0 else None
        self.per_frame, self.used = cfg.n_fft // hop, used

    def frame(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, segment_samples]`` to frames ``[B, frames, n_fft]``."""
        if self.blocks is None:
            return waveform[:, self.index]
        blocks = waveform[:, :self.used].reshape(-1, *self.blocks)  # [B, blocks, hop]
        return torch.cat([blocks[:, j:j + self.frames] for j in range(self.per_frame)],
                         dim=2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = self.frame(waveform) @ self.basis_t  # [B, frames, 2F]
        real, imag = spec.split(self.n_freq, dim=-1)
        power = real.square() + imag.square()  # [B, frames, n_freq]
        return self.front_end.to_db(power @ self.front_end.mel_t)


class OnnxWrapper(nn.Module):
    """What is exported: waveform ``[B, segment_samples]`` to (class probabilities
    ``[B, n_classes]``, leak probability ``[B]``), both float32."""

    def __init__(self, model: LeakCNN, cfg: FeatureConfig):
        super().__init__()
        self.front_end, self.model = OnnxFrontEnd(LogMel(cfg)), model
        # index_select of constant indices (a Gather) instead of LeakCNN's boolean-mask
        # indexing, which exports as NonZero: same sum, a static graph
        self.register_buffer("positive", model.positive_mask.nonzero().flatten(),
                             persistent=False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(self.front_end(waveform))
        probs = torch.softmax(self.model.class_logits(out), dim=1)
        if self.model.multiclass:  # the auxiliary leak-vs-rest head, as leak_probability
            return probs, torch.sigmoid(out[:, -1])
        return probs, probs.index_select(1, self.positive).sum(dim=1)


def export_onnx(model_path: str | Path, out_path: str | Path, *, int8: bool = False,
                check_segments: np.ndarray | None = None, device: str = "auto"
                ) -> dict[str, Any]:
    """Export the model in ``model_path`` (a ``best.pt``) to ``out_path`` and write
    ``model_card.json`` beside it; returns the card.

    The graph is kept only if onnxruntime matches PyTorch within :data:`TOLERANCE` on
    ``check_segments`` (float32 ``[N, segment_samples]``; default :func:`parity_segments`);
    otherwise :class:`ExportError`, and ``out_path`` is left as it was. ``int8`` also writes
    ``<stem>.int8.onnx`` (dynamic int8 weights for the CNN, front-end kept float32), whose
    difference is reported, not enforced. Raises ``CheckpointError`` for a file that is not
    a model checkpoint. ``device``: where the PyTorch reference of the parity check runs
    (in float32, TF32 off on a GPU); the graph itself is always exported from the CPU.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    try:
        model, card = load_model(model_path)
    except (KeyError, ValueError, RuntimeError) as exc:  # incomplete or mismatched state
        raise ExportError(f"{model_path}: not a usable leakhunter model ({exc})") from None
    model = model.float()
    cfg = card.feature
    segments = parity_segments(cfg) if check_segments is None else _segments(
        check_segments, cfg.segment_samples)
    ref = _reference(model, cfg, segments, devices.resolve(device, "export"))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    int8_path = out_path.with_name(out_path.stem + ".int8.onnx")
    tmp, tmp8 = (p.with_name(p.name + ".tmp") for p in (out_path, int8_path))
    # any failure (a parity miss, a full disk) removes both temporary files
    with guard(out_path, "writing the ONNX model", cleanup=[tmp, tmp8]):
        _export_graph(OnnxWrapper(model, cfg).eval(), cfg.segment_samples, tmp)
        parity = _compare(_run(_session(tmp), segments), ref)
        if not parity["passed"]:
            raise ExportError(
                f"{model_path}: the ONNX graph does not reproduce the PyTorch model "
                f"(max |diff| leak probability {parity['max_abs_diff_leak_probability']:.3g}, "
                f"class probabilities {parity['max_abs_diff_class_probabilities']:.3g}; "
                f"tolerance {TOLERANCE:g}); nothing written")
        int8_info = _quantise(tmp, tmp8, segments, ref) if int8 else None
        safe_write.replace(tmp, out_path, "writing the ONNX model")
        if int8_info is not None:
            safe_write.replace(tmp8, int8_path, "writing the int8 ONNX model")
            int8_info["file"] = int8_path.name
        else:  # an int8 file from an earlier export would not match this graph and card
            int8_path.unlink(missing_ok=True)
    written = _card(card, model_path, out_path, parity, int8_info)
    safe_write.write_json(out_path.parent / CARD_NAME, written)
    return written


def _reference(model: LeakCNN, cfg: FeatureConfig, segments: np.ndarray,
               choice: devices.Choice) -> tuple[np.ndarray, np.ndarray]:
    """(leak ``[N]``, class probabilities ``[N, C]``) of ``segments`` through the path
    build, train and evaluate use (:class:`LogMel`, then the model) on ``choice``'s device."""
    dev = choice.device
    log.info("parity reference on %s", choice.describe())
    ref_model = copy.deepcopy(model).to(dev) if dev.type != "cpu" else model
    front = LogMel(cfg).to(dev)
    with torch.inference_mode(), devices.exact_float32(dev):
        x = torch.from_numpy(segments)
        out = torch.cat([ref_model(front(c.to(dev))) for c in x.split(BATCH)])
        return (ref_model.leak_probability(out).float().cpu().numpy(),
                torch.softmax(ref_model.class_logits(out).float(), dim=1).cpu().numpy())


def parity_segments(cfg: FeatureConfig, seed: int = 0) -> np.ndarray:
    """About 260 deterministic test segments, float32 ``[N, cfg.segment_samples]``.

    Synthetic recordings of five kinds (:mod:`leakhunter.recordings.synth`: pipe noise, hum,
    interference, out-of-water hiss) peak-normalised from -60 to -1 dBFS, plus edge cases
    for the log and the ``top_db`` floor: digital silence, near-silence, clipped full-scale
    noise, pure tones, an impulse, a DC offset, an onset.
    """
    n, hop, sr = cfg.segment_samples, cfg.segment_hop, cfg.sample_rate
    rng = np.random.default_rng(seed)
    parts = []
    if sr >= 1000:  # the synthesiser's lower limit
        sc = SynthConfig(count=6, seed=seed, sample_rate=sr, duration_s=(n + 7 * hop) / sr,
                         labels=("LEAK", "NOLEAK", "CRACK", "NORMAL", "BACKGROUND"),
                         sensors_per_label=3, out_of_water=1, interference=0.5)
        for plan, peak in zip(synth.plan_files(sc), rng.permutation(np.geomspace(1e-3, 0.9, 30))):
            x = synth.render(plan, sc)
            x *= peak / max(float(np.abs(x).max()), 1e-12)
            parts.append(np.lib.stride_tricks.sliding_window_view(x, n)[::hop])
    t = np.arange(n) / sr
    noise = rng.standard_normal((4, n))
    onset = np.where(t > t[-1] / 2, 0.5, 1e-4) * noise[3]
    edge = [np.zeros(n), 1e-7 * noise[0], 1e-5 * noise[1], np.clip(3 * noise[2], -1, 1),
            0.01 * noise[3] + 0.5, onset, np.eye(1, n, n // 2)[0]]
    for f in np.geomspace(30, 0.45 * sr, 8):
        edge += [0.7 * np.sin(2 * np.pi * f * t), 0.1 * np.sin(2 * np.pi * f * t) + 1e-6 * noise[0]]
    parts.append(np.stack(edge))
    return np.concatenate(parts).astype(np.float32)


class OnnxScorer:
    """An exported model in onnxruntime (CPU) with its ``model_card.json``."""

    def __init__(self, onnx_path: str | Path, threads: int = 0):
        """``threads``: onnxruntime intra-op threads; 0 = its default (all cores). Worker
        processes that share the cores pass 1."""
        path = Path(onnx_path)
        card_path = path.parent / CARD_NAME
        if not path.is_file():
            raise ExportError(f"{path}: ONNX model not found")
        if not card_path.is_file():
            raise ExportError(f"{path}: no {CARD_NAME} beside it; export the model again "
                              f"(leakhunter export) or copy its card along with it")
        try:
            raw = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportError(f"{card_path}: not a leakhunter model card ({exc})") from None
        try:
            self.card = ModelCard.from_onnx_card(raw, card_path)
        except (CheckpointError, AttributeError, TypeError) as exc:  # a card of another kind
            raise ExportError(f"{card_path}: not a leakhunter model card "
                              f"({str(exc).removeprefix(f'{card_path}: ')})") from None
        self.segment_samples = self.card.feature.segment_samples
        self.n_classes = len(self.card.classes)
        self.session = _session(path, threads)
        got = [(i.name, i.type, i.shape[1:]) for i in self.session.get_inputs()]
        if got != [(INPUT, "tensor(float)", [self.segment_samples])] or sorted(
                o.name for o in self.session.get_outputs()) != sorted(OUTPUTS):
            raise ExportError(f"{path}: the graph's inputs {got} do not match its model card "
                              f"(expected {INPUT} float32 [batch, {self.segment_samples}] and "
                              f"outputs {', '.join(OUTPUTS)})")

    def score(self, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segments float32 ``[B, segment_samples]`` (full scale 1.0) to (leak probability
        float32 ``[B]``, class probabilities float32 ``[B, n_classes]``); B may be 0."""
        x = _segments(segments, self.segment_samples, allow_empty=True)
        if len(x) == 0:
            return np.zeros(0, np.float32), np.zeros((0, self.n_classes), np.float32)
        return _run(self.session, x)


# --- helpers ---------------------------------------------------------------------------------

def _segments(segments: np.ndarray, n: int, allow_empty: bool = False) -> np.ndarray:
    x = np.ascontiguousarray(segments, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n or (len(x) == 0 and not allow_empty):
        raise InputError(f"segments must be float32 [batch, {n}], got shape {list(x.shape)}")
    return x


def _session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=PROVIDERS)
    except Exception as exc:  # noqa: BLE001 (onnxruntime's own types; any is unusable)
        raise ExportError(f"{path}: onnxruntime cannot load it "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                          ) from None


def _run(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(leak ``[B]``, class probabilities ``[B, C]``) of segments ``x`` ``[B, S]``, B > 0."""
    runs = [session.run(list(OUTPUTS), {INPUT: x[i:i + BATCH]}) for i in range(0, len(x), BATCH)]
    return np.concatenate([r[1] for r in runs]), np.concatenate([r[0] for r in runs])


def _compare(got: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray]
             ) -> dict[str, Any]:
    leak, probs = (float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
    return {"segments": len(ref[0]), "max_abs_diff_leak_probability": leak,
            "max_abs_diff_class_probabilities": probs, "tolerance": TOLERANCE,
            "passed": bool(leak <= TOLERANCE and probs <= TOLERANCE),  # NaN fails
            "runtime": f"onnxruntime {ort.__version__} {PROVIDERS[0]}"}


def _export_graph(wrapper: nn.Module, segment_samples: int, path: Path) -> None:
    example = torch.zeros(2, segment_samples)  # batch 2: nothing may specialise to 1
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_axes={k: {0: "batch"} for k in (INPUT, *OUTPUTS)})
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported graph is not valid ONNX: {exc}") from None


def _quantise(src: Path, dst: Path, segments: np.ndarray,
              ref: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Dynamic int8 weights for the CNN's Conv and dense layers; the front-end stays
    float32 (its DFT and mel weights feed a log, where int8 error would be amplified)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src))
    _gemm_as_matmul(graph)  # dynamic quantisation has MatMulInteger, nothing for Gemm
    cnn = [n.name for n in graph.graph.node if n.name.startswith("/model/")]
    note = None
    with _quiet_root_logger():
        try:
            quantize_dynamic(graph, dst, weight_type=QuantType.QInt8, nodes_to_quantize=cnn)
            got = _run(_session(dst), segments)
        except Exception as exc:  # noqa: BLE001 (an op without an int8 kernel here)
            note = (f"full quantisation failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); quantised MatMul/Gemm only")
            quantize_dynamic(graph, dst, weight_type=QuantType.QInt8, nodes_to_quantize=cnn,
                             op_types_to_quantize=["MatMul", "Gemm"])
            got = _run(_session(dst), segments)
    result = _compare(got, ref)
    integer = sorted({n.op_type for n in onnx.load(str(dst)).graph.node
                      if n.op_type in ("ConvInteger", "MatMulInteger")})
    return {"file": None, "weight_type": "QInt8", "integer_ops": integer, "fallback": note,
            **{k: v for k, v in result.items() if k not in ("passed", "tolerance")}}


def _gemm_as_matmul(model: onnx.ModelProto) -> None:
    """Rewrite ``Gemm(A, B, C)`` with a constant B (the Linear layers) as
    ``MatMul(A, B') + C`` in place, node names kept as prefixes."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        name = node.input[1] + "_matmul"
        model.graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(weight.T if attrs.get("transB", 0) else weight), name))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        product = node.output[0] + "_matmul" if bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product],
                                      name=node.name + "_matmul"))
        if bias:
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]],
                                          name=node.name + "_bias"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """quantize_dynamic logs advice (run pre-processing, ...) through the root logger."""
    def keep(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname
    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _card(card: ModelCard, model_path: Path, out_path: Path, parity: dict[str, Any],
          int8_info: dict[str, Any] | None) -> dict[str, Any]:
    """``model_card.json``: the model's card (:func:`leakhunter.model.card.onnx_card`: the
    whole decision rule, feature and audio settings, provenance) and the graph's
    contract: the segment grid, inputs, outputs, parity and the int8 copy."""
    cfg = card.feature
    return onnx_card(
        card, onnx_file=out_path.name, source_checkpoint=str(model_path),
        # model files never change, so the hash names the exact rule and weights exported
        source_sha256=file_sha256(model_path),
        sample_rate=cfg.sample_rate, segment_samples=cfg.segment_samples,
        segment_hop=cfg.segment_hop, segment_s=cfg.segment_s,
        inputs=[{"name": INPUT, "shape": ["batch", cfg.segment_samples], "dtype": "float32",
                 "units": f"raw long segments at {cfg.sample_rate} Hz, full scale 1.0"}],
        outputs=[{"name": OUTPUTS[0], "shape": ["batch", len(card.classes)],
                  "dtype": "float32", "units": "softmax over classes, in the order of classes"},
                 {"name": OUTPUTS[1], "shape": ["batch"], "dtype": "float32",
                  "units": "probability that the segment is a leak"}],
        parity=parity, int8=int8_info, leakhunter_version=__version__, opset=OPSET)
