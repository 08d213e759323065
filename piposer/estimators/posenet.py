"""PoseNet estimator: aspect-preserving preprocessing, TFLite invoke, vectorized decode, mapping back to the image.

Outputs are found by name and shape, not index, so the rebuilt float models (four tensors), the
PINTO model (four tensors in alphabetical order) and the Coral uint8 models (one 64-channel
mid-offset tensor) all work. The output stride is derived from the tensor shapes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..modelstore import ModelStore, ResolvedModel
from ..backend import Model, Tensor
from ..errors import PiposerError
from ..types import COCO17, Frame, Pose, make_pose
from . import BaseEstimator, ModelSettings, settings_from
from .settings import PoseNetSettings
from .posenet_decoder import Decoded, decode_multiple, decode_single, refine_keypoints
from .second_pass import SecondPass
from .ssd import sigmoid


@dataclass(frozen=True)
class Outputs:
    """Which output tensor holds which PoseNet head; `mid` is Coral's fwd+bwd displacement tensor."""

    heatmap: Tensor
    offsets: Tensor
    fwd: Tensor | None = None
    bwd: Tensor | None = None
    mid: Tensor | None = None

    @classmethod
    def find(cls, tensors: list[Tensor], path) -> Outputs:
        by_channels: dict[int, list[Tensor]] = {}
        for t in tensors:
            by_channels.setdefault(t.shape[-1], []).append(t)
        heat, offs, mid, disp = (by_channels.get(c, []) for c in (17, 34, 64, 32))
        fwd = [t for t in disp if "fwd" in t.name]
        bwd = [t for t in disp if "bwd" in t.name]
        if len(heat) == 1 and len(offs) == 1 and (len(mid) == 1 or (len(fwd) == 1 and len(bwd) == 1)):
            return cls(heat[0], offs[0], fwd[0] if fwd else None, bwd[0] if bwd else None, mid[0] if mid else None)
        found = ", ".join(f"{t.name}{list(t.shape)}" for t in tensors)
        raise PiposerError(
            f"model {path} does not have PoseNet outputs (heatmap 17, offsets 34, displacements 2x32 or 64 channels): {found}")


def aspect_input_size(image_hw: tuple[int, int], long_side: int, stride: int) -> tuple[int, int]:
    """Model input (h, w) with the image's aspect: long side `long_side`, short side rounded up to k*stride+1."""
    h, w = image_hw
    scale = long_side / max(h, w)
    short = min(h, w) * scale
    short = int(np.ceil((short - 1) / stride)) * stride + 1
    return (long_side, short) if h >= w else (short, long_side)


def heatmap_scores(heatmap: np.ndarray) -> np.ndarray:
    """Part scores in 0..1 from a heatmap head.

    Most PoseNet files output logits (the background lies far below 0); PINTO's quantized model has
    the sigmoid built in, so its heatmap is never negative, and a second sigmoid would flatten it.
    """
    return heatmap if heatmap.min() >= 0.0 else sigmoid(heatmap)


def valid_size(size: int, stride: int) -> bool:
    return (size - 1) % stride == 0


class PoseNetEstimator(BaseEstimator):
    """PoseNet on TFLite: frame in, poses in source-image pixels out.

    Preprocessing keeps the aspect ratio: by default the (fully convolutional) model input is
    resized to the frame's aspect with the manifest's long side, and the few rows or columns left
    over are padded at the bottom/right; with `input_size` set the frame is letterboxed into it.
    Squeezing a 4:3 frame into 353x257 halves accuracy (COCO AP 0.11 against 0.22).
    """

    layout = COCO17

    def __init__(self, model: ModelSettings | None = None, settings: PoseNetSettings | None = None,
                 store: ModelStore | None = None):
        self.model_settings = dataclasses.replace(model) if model else ModelSettings()
        self.settings = settings or PoseNetSettings()
        resolved = self._resolve(store or ModelStore.from_environment(), self.model_settings.name,
                                 self.settings.output_stride)
        self.model_name = resolved.name
        self.model = Model(resolved.path, self.model_settings.num_threads)
        self.outputs = Outputs.find(self.model.outputs, resolved.path)
        self.quantized_input = self.model.input.dtype == np.uint8
        self.stride = self._derive_stride(resolved.path)
        if self.settings.output_stride and self.settings.output_stride != self.stride:
            raise PiposerError(
                f"model {resolved.path.name} has output stride {self.stride} (from its tensor shapes), "
                f"but posenet.output_stride = {self.settings.output_stride}")
        self.long_side = self.settings.long_side or max(self.model.input.shape[1:3])
        if not valid_size(self.long_side, self.stride):
            raise PiposerError(f"posenet.long_side = {self.long_side}: long_side-1 must be a multiple of the "
                               f"output stride {self.stride} of {resolved.path.name}")
        if self.settings.input_size:
            self._check_size(tuple(self.settings.input_size), "posenet.input_size")
        self.timings: dict[str, float] = {}
        self._buffer: np.ndarray | None = None
        s = self.settings
        self.second_pass = None if s.second_pass == "off" or s.input_size else SecondPass(
            s.running_mode == "video", s.second_pass == "motion", s.second_pass_zoom, s.second_pass_crops, self.long_side, self.stride,
            lambda: PoseNetEstimator(self.model_settings, dataclasses.replace(s, second_pass="off"), store))

    @staticmethod
    def _resolve(store: ModelStore, name: str, stride: int | None) -> ResolvedModel:
        """A manifest name plus an output stride picks the model variant built for that stride."""
        info = store.manifest.get(name)
        if stride and info is not None and info.stride != stride:
            name = info.variants.get(str(stride), name)
        return store.resolve(name)

    def _derive_stride(self, path) -> int:
        h_in, w_in = self.model.input.shape[1:3]
        h_out, w_out = self.outputs.heatmap.shape[1:3]
        stride = (h_in - 1) // max(h_out - 1, 1)
        if stride not in (8, 16, 32) or (h_out - 1) * stride + 1 != h_in or (w_out - 1) * stride + 1 != w_in:
            raise PiposerError(f"model {path} has a {h_out}x{w_out} output grid for a {h_in}x{w_in} input: no PoseNet output stride fits")
        return stride

    def _check_size(self, hw: tuple[int, int], what: str) -> None:
        if not all(valid_size(s, self.stride) for s in hw):
            raise PiposerError(f"{what} = {list(hw)}: height-1 and width-1 must be multiples of the output stride {self.stride}")

    def input_size_for(self, image_hw: tuple[int, int], long_side: int | None = None) -> tuple[int, int]:
        if self.settings.input_size:
            return tuple(self.settings.input_size)
        return aspect_input_size(image_hw, long_side or self.long_side, self.stride)

    def preprocess(self, image: np.ndarray, long_side: int | None = None) -> tuple[np.ndarray, float]:
        """BGR frame -> model input batch (RGB, scaled as the model expects, padded); returns it and the scale.

        Large frames are first halved with Gaussian pyramids (cheap, no aliasing) until at most
        a halving is left, which linear interpolation does well.
        """
        h, w = image.shape[:2]
        in_h, in_w = self.input_size_for((h, w), long_side)
        self.model.resize_input((1, in_h, in_w, 3))
        scale = min(in_h / h, in_w / w)
        new_w, new_h = min(in_w, round(w * scale)), min(in_h, round(h * scale))
        while image.shape[1] > 2 * new_w:
            image = cv2.pyrDown(image)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if self.model_settings.flip_horizontal:
            resized = cv2.flip(resized, 1)
        batch = self._batch((1, in_h, in_w, 3))
        pad = 128 if self.quantized_input else 0.0
        batch[0, new_h:], batch[0, :, new_w:] = pad, pad  # clear what a previous frame may have left
        view = batch[0, :new_h, :new_w]
        view[...] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        if not self.quantized_input:
            view *= np.float32(1 / 127.5)
            view -= np.float32(1.0)
        return batch, scale

    def _batch(self, shape: tuple[int, ...]) -> np.ndarray:
        """The input buffer for this shape, reused while the frame size stays the same; padding is mid-grey."""
        if self._buffer is None or self._buffer.shape != shape:
            self._buffer = np.full(shape, 128, np.uint8) if self.quantized_input else np.zeros(shape, np.float32)
        return self._buffer

    def infer(self, image: np.ndarray, long_side: int | None = None) -> tuple[dict[str, np.ndarray], float]:
        """Run the network on a BGR image; returns the four heads as float arrays and the input scale."""
        t0 = time.perf_counter()
        batch, scale = self.preprocess(image, long_side)
        t1 = time.perf_counter()
        self.model.run(batch)
        t2 = time.perf_counter()
        out = self.outputs
        heads = {"heatmap": self.model.output(out.heatmap), "offsets": self.model.output(out.offsets)}
        if out.mid is not None:
            mid = self.model.output(out.mid)
            heads["fwd"], heads["bwd"] = mid[..., :32], mid[..., 32:]
        else:
            heads["fwd"], heads["bwd"] = self.model.output(out.fwd), self.model.output(out.bwd)
        for stage, seconds in (("preprocess", t1 - t0), ("invoke", t2 - t1)):
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        return heads, scale

    def decode(self, heads: dict[str, np.ndarray]) -> Decoded:
        scores = heatmap_scores(heads["heatmap"])
        s = self.settings
        if s.decoder == "single":
            decoded = decode_single(scores, heads["offsets"], self.stride)
        else:
            decoded = decode_multiple(scores, heads["offsets"], heads["fwd"], heads["bwd"], self.stride,
                                      s.score_threshold, s.nms_radius, s.max_poses)
        return refine_keypoints(decoded, heads["offsets"], self.stride, s.refine_steps)

    def _estimate(self, frame: Frame) -> list[Pose]:
        self.timings = dict.fromkeys(("preprocess", "invoke", "decode"), 0.0)
        poses = self.poses_in(frame.image)
        if self.second_pass:
            poses = self.second_pass(frame, poses, self.settings.max_poses, self.model_settings.keypoint_threshold)
            for other in self.second_pass.passes:  # its crops' stages count as this frame's
                for stage, seconds in other.timings.items():
                    self.timings[stage] += seconds
        return poses

    def poses_in(self, image: np.ndarray, long_side: int | None = None) -> list[Pose]:
        """One pass over a BGR image (input long side `long_side`, default the setting's): its poses in its
        pixels, stage times added to `timings`."""
        heads, scale = self.infer(image, long_side)
        t0 = time.perf_counter()
        poses = self.to_poses(self.decode(heads), scale, (image.shape[1], image.shape[0]))
        self.timings["decode"] = self.timings.get("decode", 0.0) + time.perf_counter() - t0
        return poses

    def to_poses(self, decoded: Decoded, scale: float, image_size: tuple[int, int]) -> list[Pose]:
        """Decoded input-pixel (y, x) keypoints -> Poses in source-image pixels, weak poses dropped."""
        poses = []
        for kps, kp_scores, score in zip(decoded.keypoints, decoded.keypoint_scores, decoded.scores):
            if score < self.settings.min_pose_score:
                continue
            xy = kps[:, ::-1] / scale
            poses.append(make_pose(COCO17, xy, kp_scores, image_size, self.model_settings.keypoint_threshold, score))
        return poses

    def close(self) -> None:
        self.model = None
        if self.second_pass:
            self.second_pass.close()


class PoseNet(PoseNetEstimator):
    """PoseNet for library users: `PoseNet()`, `PoseNet("posenet-stride8")` or a .tflite path, with any
    [model] or [posenet] setting as a keyword (`PoseNet(keypoint_threshold=0.5, max_poses=3)`)."""

    def __init__(self, model: str = "posenet", *, store: ModelStore | None = None, **options):
        super().__init__(*settings_from(options, ModelSettings(name=model), PoseNetSettings()), store=store)
