"""The `piposer` command: run the appliance, process images and videos, manage models, evaluate, benchmark."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from .. import __version__
from ..errors import PiposerError

log = logging.getLogger("piposer")


class Interrupted(Exception):
    """SIGTERM or SIGHUP during a one-off command: unwinds like Ctrl-C, so every `with` discards what it
    was writing (no temporary files left, no earlier output replaced)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interruptible():
    """Turn SIGTERM and SIGHUP into `Interrupted` while the block runs (their default action would end the
    process without any cleanup)."""
    def raise_interrupted(signum, _frame):
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def load_config(args):
    """The config file (--config, $PIPOSER_CONFIG or /etc/piposer/config.toml) with command-line overrides."""
    from .. import config

    cfg = config.load(config.config_file(args.config))
    if getattr(args, "model", None):
        cfg.model.name = args.model
    if getattr(args, "flip", False):
        cfg.model.flip_horizontal = True
    return cfg


def cmd_image(args) -> int:
    from ..estimators import create
    from ..runtime.pipeline import Pipeline
    from ..sinks.files import free_path, image_document, write_bytes, write_image
    from ..sinks.render import draw, parse_overlay
    from ..sources import read_frame

    overlay = parse_overlay(args.overlay)
    cfg = load_config(args)
    out = Path(args.out)
    failed = 0
    with Pipeline(create(cfg, running_mode="image", store=args.store)) as pipeline:
        for name in args.images:
            try:
                frame = read_frame(name)
            except PiposerError as exc:
                print(f"piposer: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            poses = pipeline.process(frame)
            stem = Path(name).stem
            annotated = draw(frame.image, poses, overlay, mirrored=cfg.model.flip_horizontal)
            written = [write_image(free_path(out / f"{stem}.jpg", args.overwrite), annotated)] if overlay else []
            doc = image_document(name, frame, poses, pipeline.estimator.model_name)
            written.append(write_bytes(free_path(out / f"{stem}.json", args.overwrite),
                                       json.dumps(doc, indent=1).encode()))
            print(f"{name}: {len(poses)} pose{'s' * (len(poses) != 1)} -> {', '.join(map(str, written))}")
    return 1 if failed else 0


def cmd_video(args) -> int:
    """The pipeline over a video file, with a video sink (poses drawn) and optionally a data sink (CSV/JSONL)."""
    from ..estimators import create
    from ..runtime.pipeline import Pipeline
    from ..layouts import check_convertible, output_layout
    from ..sinks.files import PoseDataWriter, VideoSink, data_targets, free_path
    from ..sinks.render import parse_overlay
    from ..sinks.progress import Progress
    from ..sources import open_video
    from ..tracking import Tracker

    overlay = parse_overlay(args.overlay)
    targets = data_targets(args.input, args.data or [])
    layout = output_layout(args.layout) if args.layout else None
    cfg = load_config(args)
    source = open_video(args.input)
    pipeline = Pipeline(None, source=source, tracker=Tracker(cfg.tracking), min_pose_score=cfg.loop.min_pose_score)
    with pipeline:
        pipeline.estimator = create(cfg, running_mode="video", store=args.store)
        layout = layout or pipeline.estimator.layout
        check_convertible(pipeline.estimator.layout, layout)
        fps = source.device.fps
        video = VideoSink(free_path(Path(args.out or f"{Path(args.input).stem}-poses.mp4"), args.overwrite), fps,
                          overlay, mirrored=cfg.model.flip_horizontal, layout=layout)
        pipeline.sinks.append(video)
        for target in targets:
            pipeline.sinks.append(PoseDataWriter(free_path(target, args.overwrite), layout, fps))
        pipeline.sinks.append(Progress(source.device.frame_count))
        started = time.monotonic()
        frames = pipeline.run()
        if frames == 0:
            raise PiposerError(f"no frames could be read from video {args.input}")
        written = [sink.finish() for sink in pipeline.sinks if hasattr(sink, "finish")]
    elapsed = time.monotonic() - started
    print(f"{args.input}: {frames} frames in {elapsed:.1f} s ({frames / elapsed:.1f} fps) -> "
          f"{', '.join(map(str, written))}")
    return 0


def cmd_run(args) -> int:
    from ..runtime.supervisor import run

    def configured():
        cfg = load_config(args)
        if args.source:
            cfg.source.source = args.source
        return cfg

    return run(configured(), load_config=configured, store=args.store)


def cmd_models(args) -> int:
    store = args.store
    names = args.names or list(store.manifest)
    for name in names:
        store.info(name)  # an unknown name fails before anything is done
    if args.action == "list":
        for name in names:
            info = store.info(name)
            try:
                where = str(store.resolve(name).path)
            except PiposerError as exc:
                where = f"not found (piposer models fetch {name})" if "not found" in str(exc) else f"unusable: {exc}"
            stride = f"stride {info.stride}" if info.stride else ""
            print(f"{name:24} {info.family:18} {info.input[0]}x{info.input[1]:<4} {stride:10} {where}")
            print(f"{'':24} {info.description}")
        return 0
    failed = 0
    for name in names:
        try:
            if args.action == "fetch":
                print(f"{name}: {store.fetch(name, Path(args.dir) if args.dir else None)}")
            else:
                resolved = store.verify(name)
                trusted = " (first use: hash recorded)" if resolved.first_use else ""
                print(f"{name}: ok {resolved.path} sha256 {resolved.sha256}{trusted}")
        except PiposerError as exc:
            print(f"piposer: error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def eval_spec(spec: str, base, store):
    """`NAME` or `NAME:key=value,key=value` (keys of [model] and the model family's section, TOML values)
    -> a copy of the config with them applied; a bad key or value is a PiposerError naming the spec."""
    import copy
    import tomllib

    from ..estimators import settings_from

    name, _, options = spec.partition(":")
    cfg = copy.deepcopy(base)
    cfg.model.name = name
    family = store.family_of(name)
    try:
        values = {k.strip(): tomllib.loads(f"v = {v}")["v"]
                  for k, v in (item.split("=", 1) for item in options.split(",") if item)}
        cfg.model, section = settings_from(values, cfg.model, getattr(cfg, family))
    except (ValueError, tomllib.TOMLDecodeError):
        raise PiposerError(f"--model {spec!r}: write settings as NAME:key=value,key=value") from None
    except PiposerError as exc:
        raise PiposerError(f"--model {spec!r}: {exc}") from None
    setattr(cfg, family, section)
    return cfg


EVAL_COLUMNS = ("AP", "AP50", "APm", "APl", "AR")


def cmd_eval(args) -> int:
    import statistics

    from .. import config
    from ..estimators import create
    from ..layouts import check_convertible, to_layout
    from ..types import COCO17
    from .evaluate import coco_eval, load_annotations, predict, small_recall

    annotations = Path(args.data)
    load_annotations(annotations)  # a bad file fails before any model is loaded
    base = config.load(config.config_file(args.config))
    specs = args.model or ["posenet"]
    configs = [eval_spec(spec, base, args.store) for spec in specs]  # a bad spec fails before any model runs
    width = max(22, *(len(s) + 1 for s in specs))
    print(f"COCO keypoint evaluation on {annotations} (R<100: people under 100 px tall found with OKS >= 0.5; "
          "ms: median per frame)")
    print(f"{'model':{width}}" + "".join(f"{s:>7}" for s in EVAL_COLUMNS + ("R<100", "ms")))
    for spec, cfg in zip(specs, configs):
        estimator = create(cfg, running_mode="image", store=args.store)
        check_convertible(estimator.layout, COCO17, f"eval --model {spec}")
        seconds: list[float] = []
        results = predict(estimator, annotations, lambda pose: to_layout(pose, COCO17), seconds)
        stats = coco_eval(annotations, results)
        row = [stats[s] for s in EVAL_COLUMNS] + [small_recall(annotations, results)]
        print(f"{spec:{width}}" + "".join(f"{v:7.3f}" for v in row) + f"{statistics.median(seconds) * 1e3:7.1f}")
    return 0


def cmd_bench(args) -> int:
    from .benchmark import print_report, time_estimator
    from ..estimators import create

    cfg = load_config(args)
    folder = Path(args.images)
    images = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    if not images:
        raise PiposerError(f"no images in {folder}")
    estimator = create(cfg, running_mode="image", store=args.store)
    print_report(estimator, time_estimator(estimator, images, args.repeat), len(images), args.repeat)
    return 0


def poses_config(args):
    """The config for `teach` and `poses` (rules naming poses not taught yet are fine here) and its poses file."""
    from .. import config

    cfg = config.load(config.config_file(args.config), check_files=False)
    if getattr(args, "model", None):
        cfg.model.name = args.model
    if args.poses:
        cfg.poses.file = str(Path(args.poses).resolve())
    return cfg, Path(cfg.poses.file)


def cmd_teach(args) -> int:
    from .teach import teach

    cfg, path = poses_config(args)
    delay = args.delay if args.delay is not None else 0.0
    print(teach(cfg, path, args.label, args.source, args.seconds, delay, args.interval, args.store))
    return 0


def cmd_poses(args) -> int:
    from . import teach

    cfg, path = poses_config(args)
    if args.action == "list":
        lines = teach.list_poses(path)
    elif args.action == "remove":
        if not args.label:
            raise PiposerError("poses remove needs the LABEL to remove")
        lines = [teach.remove_pose(path, args.label)]
    else:
        if not args.source:
            raise PiposerError("poses test needs --source (a camera, video file or folder)")
        lines = teach.test_poses(cfg, args.source, args.seconds, args.store)
    print("\n".join(lines))
    return 0


def cmd_config(args) -> int:
    from .. import config

    path = config.config_file(args.config)
    cfg = config.load(path)
    if args.action == "check":
        print(f"{path or 'built-in defaults'}: ok")
    else:
        print(json.dumps(config.as_dict(cfg), indent=2))
    return 0


def cmd_web(args) -> int:
    """`piposer web passwd`: set the console's password (typed twice, one line on stdin, or --random)."""
    import getpass
    import secrets

    from .. import config
    from ..sinks.files import replace_text
    from ..web.auth import hash_password

    target = args.file or config.load(config.config_file(args.config), check_files=False).web.password_file
    if not target:
        raise PiposerError("web passwd: no password file: give --file or set [web] password_file in the config")
    if args.random:
        password = secrets.token_urlsafe(12)
    elif sys.stdin.isatty():
        password = getpass.getpass("new web console password: ")
        if getpass.getpass("again: ") != password:
            raise PiposerError("web passwd: the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise PiposerError("web passwd: the password must have at least 8 characters; nothing changed")
    replace_text(Path(target).expanduser(), hash_password(password) + "\n")
    if args.random:
        print(f"web console password (shown only now): {password}")
    print(f"password hash written to {target}; a running piposer uses it at the next login")
    return 0


def cmd_doctor(args) -> int:
    from .. import config
    from . import doctor

    checks = doctor.run_checks(config.config_file(args.config), args.store, min_fps=args.min_fps)
    for check in checks:
        print(check.line(), flush=True)
    return 0 if all(c.ok for c in checks) else 1


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="piposer", description="Pose estimation on the Raspberry Pi: TFLite PoseNet, MoveNet, BlazePose and hands to MQTT, Home Assistant, OSC, WebSockets and GPIO.")
    p.add_argument("--version", action="version", version=f"piposer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, func, help, model=True):
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--config", help="config file (default: $PIPOSER_CONFIG or /etc/piposer/config.toml)")
        if model:
            c.add_argument("--model", help="model name from 'piposer models list' or a .tflite path")
        c.set_defaults(func=func)
        return c

    c = command("run", cmd_run, "run the appliance loop: camera -> poses -> MQTT/GPIO")
    c.add_argument("--source", help="camera, video file, folder, URL or 'auto' (overrides [source] source)")

    for name, func, what in (("image", cmd_image, "annotate images and write their poses as JSON"),
                             ("video", cmd_video, "annotate a video and write per-frame pose data")):
        c = command(name, func, what)
        c.add_argument("--overlay", default="links,keypoints,box", help="links,keypoints,box or none")
        c.add_argument("--flip", action="store_true", help="mirror the input horizontally first")
        c.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sub.choices["image"].add_argument("images", nargs="+", metavar="IMG")
    sub.choices["image"].add_argument("--out", default="piposer-out", help="output folder (default: piposer-out)")
    sub.choices["video"].add_argument("input", metavar="IN")
    sub.choices["video"].add_argument("--out", help="annotated video (default: IN-poses.mp4)")
    sub.choices["video"].add_argument(
        "--data", action="append", help="per-frame poses: a .csv, .tsv, .jsonl or .txt (MGT-python) file, or just "
        "the format (csv, txt, ...) for IN_pose.<format> beside the video as MGT-python names it; repeat for several")
    sub.choices["video"].add_argument("--layout", help="keypoint layout of the data files and the overlay: coco17, "
                                      "coco18, mpi15 "
                                      "(OpenPose's, neck and chest derived) or blazepose33 (default: the model's)")

    c = sub.add_parser("models", help="list, fetch or verify model files")
    c.add_argument("action", choices=("list", "fetch", "verify"))
    c.add_argument("names", nargs="*", help="model names (default: all)")
    c.add_argument("--dir", help="fetch into this folder instead of the cache")
    c.set_defaults(func=cmd_models)

    c = command("eval", cmd_eval, "COCO keypoint AP/AR on photos with ground truth", model=False)
    c.add_argument("--model", action="append",
                   help="model to evaluate, NAME or NAME:key=value,... e.g. posenet:long_side=481 (repeatable; "
                        "default posenet)")
    c.add_argument("--data", required=True, help="COCO person_keypoints.json (images in images/ beside it)")

    c = command("bench", cmd_bench, "time preprocess, invoke and decode on photos")
    c.add_argument("--images", required=True, help="folder of photos")
    c.add_argument("--repeat", type=positive_int, default=10)

    c = command("teach", cmd_teach, "record examples of a pose (the largest person in view) into the poses file")
    c.add_argument("label", metavar="LABEL", help="the pose's name, e.g. arms_up")
    c.add_argument("--source", required=True, help="camera, video file, folder or URL")
    c.add_argument("--seconds", type=float, default=5.0, help="how long to record (default 5; media time for files)")
    c.add_argument("--delay", type=float, help="seconds before recording starts: waited out on a camera, skipped in a file (default 0)")
    c.add_argument("--interval", type=float, default=0.2, help="seconds between examples (default 0.2)")
    c.add_argument("--poses", help="poses file (default: [poses] file, poses.json beside the config)")

    c = command("poses", cmd_poses, "list, remove or try the taught poses")
    c.add_argument("action", choices=("list", "remove", "test"))
    c.add_argument("label", nargs="?", metavar="LABEL", help="for remove: the pose to forget")
    c.add_argument("--source", help="for test: camera, video file, folder or URL")
    c.add_argument("--seconds", type=float, default=float("inf"), help="for test: stop after this many seconds")
    c.add_argument("--poses", help="poses file (default: [poses] file, poses.json beside the config)")

    c = command("doctor", cmd_doctor, "check camera, model, fps, temperature, broker and GPIO (service stopped)",
                model=False)
    c.add_argument("--min-fps", type=float, default=5.0, help="the fps check fails below this (default 5)")

    c = command("config", cmd_config, "check or show the configuration (secrets masked)", model=False)
    c.add_argument("action", choices=("check", "show"))

    c = command("web", cmd_web, "set the web console's password", model=False)
    c.add_argument("action", choices=("passwd",))
    c.add_argument("--file", help="password file (default: [web] password_file of the config)")
    c.add_argument("--random", action="store_true", help="make up a random password and print it once")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # our own messages name unreadable files
    args = parser().parse_args(argv)
    from ..modelstore import ModelStore

    args.store = ModelStore.from_environment()  # the one place the model folders' variables are read
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.func in (cmd_image, cmd_video):
            with interruptible():
                return args.func(args)
        return args.func(args)
    except Interrupted as exc:
        print(f"piposer: stopped by {exc}; nothing half-written was kept", file=sys.stderr)
        return 128 + exc.signum
    except PiposerError as exc:
        print(f"piposer: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that cannot be made, a full disk: name the file
        print(f"piposer: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
