"""Which EfficientNet-Lite0 layer and image size should feed minilm-vl? Frozen-feature probes.

For every image size, one pass of the pretrained (and, for reference, random-init) tower over
the images records the candidate layers (``fedpia.models.vision.IMAGE_LAYERS``), each
average-pooled over space. Then, per (size, layer):

- MedMNIST BreastMNIST / PneumoniaMNIST / RetinaMNIST: logistic regression on the standardised
  pooled features (official test split; train capped at ``--max-train`` per dataset, seeded);
- VQA-RAD (official split): an MLP on [frozen MiniLM question embedding (mean over tokens);
  pooled image feature], classes = the training answers (test answers outside them count wrong).

``--extraction-only`` measures the cached feature extraction instead (``FeatureExtractor``, disk
cache off, img/s per size and thread count) and stores it beside the saved probes.
Writes ``benchmarks/results/image_features.json``, prints a table and rewrites the
``<!-- image-features:start/end -->`` section of docs/benchmarks.md (``--doc-only``: from the
saved JSON, without measuring).

    OMP_NUM_THREADS=1 python benchmarks/bench_image_features.py --data-root ../shared/data \
        --sizes 112,128,224 --weights shipped
    python benchmarks/bench_image_features.py --extraction-only --sizes 128,224
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _docs import int_list, write_section

from fedpia.data import load_image
from fedpia.data.medmnist_data import load_medmnist
from fedpia.data.vqarad import load_vqa_rad
from fedpia.experiments.runner import provenance
from fedpia.models.processors import image_tensor
from fedpia.models.vision import IMAGE_LAYERS, EfficientNetLiteTower

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "image_features.json"
DOC = ROOT / "docs" / "benchmarks.md"
FLAGS = ("breastmnist", "pneumoniamnist", "retinamnist")
log = logging.getLogger("bench_image_features")


def pooled_layers(tower: EfficientNetLiteTower, images, *, batch: int = 64) -> dict[str, np.ndarray]:
    """{layer: [N, C]} spatially averaged feature maps of every candidate layer, one pass."""
    net, out = tower.net, {k: [] for k in IMAGE_LAYERS}
    by_blocks = {n: k for k, (n, head, _) in IMAGE_LAYERS.items() if not head}
    for s in range(0, len(images), batch):
        x = torch.stack([image_tensor(load_image(im), size=tower.image_size, mean_std=tower.mean_std)
                         for im in images[s : s + batch]])
        with torch.inference_mode():
            h = net._swish(net._bn0(net._conv_stem(x)))
            for i, block in enumerate(net._blocks):
                h = block(h)
                if i + 1 in by_blocks:
                    out[by_blocks[i + 1]].append(h.mean(dim=(2, 3)))
            out["head"].append(net._swish(net._bn1(net._conv_head(h))).mean(dim=(2, 3)))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def probe(xtr, ytr, xte, yte, *, mlp: bool = False) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = (MLPClassifier((256,), alpha=1e-2, max_iter=300, early_stopping=False, random_state=0)
           if mlp else LogisticRegression(C=0.1, max_iter=3000))
    model = make_pipeline(StandardScaler(), clf).fit(xtr, ytr)
    return float((model.predict(xte) == yte).mean())


def medmnist_data(root: Path, max_train: int, seed: int):
    rng = np.random.default_rng(seed)
    data = {}
    for flag in FLAGS:
        ds = load_medmnist(root / "medmnist", flag, as_task="multiclass")
        train, test = list(ds.split("train")), list(ds.split("test"))
        if len(train) > max_train:
            train = [train[i] for i in sorted(rng.choice(len(train), max_train, replace=False))]
        data[flag] = (train, test)
    return data


def vqa_features(tower, train, test) -> list[dict[str, np.ndarray]]:
    """Per-sample pooled layers for VQA-RAD, each distinct image run once."""
    paths = sorted({str(s.image) for s in train + test})
    index = {p: i for i, p in enumerate(paths)}
    feats = pooled_layers(tower, paths)
    return [{k: v[[index[str(s.image)] for s in split]] for k, v in feats.items()}
            for split in (train, test)]


def question_embeddings(texts: list[str]) -> np.ndarray:
    """Frozen MiniLM (shipped weights) mean-pooled question embeddings [N, 384]."""
    from fedpia.models.minilm_vl import build_minilm
    from fedpia.models.processors import bert_tokenizer

    bert, tok = build_minilm(None, seed=0, pooler=False).eval(), bert_tokenizer()
    out = []
    for s in range(0, len(texts), 128):
        enc = tok(texts[s : s + 128], padding=True, return_tensors="pt")
        with torch.inference_mode():
            h = bert(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((h * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out)


def run(args) -> dict:
    root = Path(args.data_root)
    med = medmnist_data(root, args.max_train, args.seed)
    vqa = load_vqa_rad(root / "vqa_rad")
    vtr, vte = list(vqa.split("train")), list(vqa.split("test"))
    answers = sorted({s.target for s in vtr})
    a_index = {a: i for i, a in enumerate(answers)}
    q_tr, q_te = np.split(question_embeddings([s.text for s in vtr + vte]), [len(vtr)])
    y_tr = np.array([a_index[s.target] for s in vtr])
    y_te = np.array([a_index.get(s.target, -1) for s in vte])
    rows = []
    for size in args.sizes:
        for weights in args.weights:
            tower = EfficientNetLiteTower(image_size=size, layer="head", weights=weights, seed=0)
            t0 = time.perf_counter()
            feats = {f: [pooled_layers(tower, tr), pooled_layers(tower, te)] for f, (tr, te) in med.items()}
            n_img = sum(len(tr) + len(te) for tr, te in med.values())
            img_s = n_img / (time.perf_counter() - t0)
            vfeat = vqa_features(tower, vtr, vte)
            for layer in IMAGE_LAYERS:
                row = {"size": size, "weights": weights, "layer": layer, "probe_img_per_s": img_s}
                for flag, (tr, te) in med.items():
                    ytr = np.array([s.target for s in tr])
                    yte = np.array([s.target for s in te])
                    row[flag] = probe(feats[flag][0][layer], ytr, feats[flag][1][layer], yte)
                xtr = np.concatenate([q_tr, vfeat[0][layer]], axis=1)
                xte = np.concatenate([q_te, vfeat[1][layer]], axis=1)
                row["vqarad"] = probe(xtr, y_tr, xte, y_te, mlp=True)
                rows.append(row)
                log.info("%s", row)
    return {"rows": rows}


def extraction_speed(root: Path, sizes, threads=(1, 2)) -> list[dict]:
    """img/s of FeatureExtractor (cache off): 256 PneumoniaMNIST arrays and 128 VQA-RAD JPEGs
    (decoding included), per image size and thread count."""
    from fedpia.models.features import FeatureExtractor

    os.environ["FEDPIA_CACHE_DIR"] = "off"
    arrays = [s.image for s in load_medmnist(root / "medmnist", "pneumoniamnist",
                                             as_task="multiclass").split("train")[:256]]
    jpegs = sorted({str(s.image) for s in load_vqa_rad(root / "vqa_rad")})[:128]
    out = []
    for n in threads:
        torch.set_num_threads(n)
        for size in sizes:
            ext = FeatureExtractor(EfficientNetLiteTower(image_size=size, layer="head"))
            ext(arrays[:16])  # warm-up
            row = {"size": size, "threads": n, "load_avg": os.getloadavg()[0]}
            for name, images in (("medmnist", arrays), ("vqarad_jpeg", jpegs)):
                t0 = time.perf_counter()
                ext(images)
                row[f"{name}_img_per_s"] = len(images) / (time.perf_counter() - t0)
            out.append(row)
            log.info("%s", row)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--sizes", type=int_list, default=[112, 128, 224])
    ap.add_argument("--weights", type=lambda s: s.split(","), default=["shipped", "random"])
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--doc-only", action="store_true", help="rewrite the docs table from the JSON")
    ap.add_argument("--extraction-only", action="store_true",
                    help="measure extraction img/s only (stored beside the saved probes)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.doc_only:
        res = json.loads(OUT.read_text())
    elif args.extraction_only:
        res = json.loads(OUT.read_text())
        res["extraction"] = extraction_speed(Path(args.data_root), args.sizes)
        res["extraction_command"] = "python " + " ".join(sys.argv)
        OUT.write_text(json.dumps(res, indent=1))
    else:
        t0 = time.perf_counter()
        res = run(args)
        res.update(command="OMP_NUM_THREADS=1 python " + " ".join(sys.argv), provenance=provenance(),
                   wall_s=time.perf_counter() - t0, load_avg=os.getloadavg())
        OUT.write_text(json.dumps(res, indent=1))
    table = doc_table(res)
    print(table)
    write_section(DOC, "image-features", "Image tower: layer and image size (frozen-feature probes)",
                  table)


def doc_table(res: dict) -> str:
    lines = ["<!-- image-features:start -->",
             "| size px | weights | layer (channels) | BreastMNIST | PneumoniaMNIST | RetinaMNIST | "
             "VQA-RAD (MLP, + question) |", "|---:|---|---|---:|---:|---:|---:|"]
    for r in res["rows"]:
        ch = IMAGE_LAYERS[r["layer"]][2]
        lines.append(f"| {r['size']} | {r['weights']} | {r['layer']} ({ch}) | "
                     f"{100 * r['breastmnist']:.1f} | {100 * r['pneumoniamnist']:.1f} | "
                     f"{100 * r['retinamnist']:.1f} | {100 * r['vqarad']:.1f} |")
    lines += ["", "Probe command (the load average during the run was "
              f"{res['load_avg'][0]:.1f}-{res['load_avg'][2]:.1f}):", "", "```bash", res["command"], "```"]
    if "extraction" in res:
        lines += ["", "Feature extraction (`FeatureExtractor`, disk cache off; MedMNIST 28x28 arrays "
                  "and VQA-RAD JPEGs incl. decoding), img/s:", "",
                  "| size px | threads | MedMNIST | VQA-RAD JPEG | load average |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {e['size']} | {e['threads']} | {e['medmnist_img_per_s']:.0f} | "
                  f"{e['vqarad_jpeg_img_per_s']:.0f} | {e['load_avg']:.1f} |" for e in res["extraction"]]
        lines += ["", "```bash", res["extraction_command"], "```"]
    lines.append("<!-- image-features:end -->")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
