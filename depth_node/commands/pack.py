"""`depth-node pack MODEL -o DIR`: a trained model made ready to ship: compact model file, ONNX, model card.

Writes DIR/NAME.pt (int8 or fp16 weight storage; loads as fp32), DIR/NAME_onnx/{depth,pose}.onnx (fp16 weight
storage, fp32 arithmetic, parity-checked) and DIR/NAME.md: data and seeds, training config, what compact storage
changed (depth drift against the fp32 weights on held-out synthetic frames), held-out metrics when given
(`--metrics`, e.g. out/demo/metrics.json), and the licence. This is how models/default.pt was made.

Library: `depth_node/pack.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1] if __doc__ else help_text)
    p.add_argument("model", type=Path, help="trained model file (.pt, e.g. <train out>/model.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (e.g. models)")
    p.add_argument("--name", default="model", help="file stem (default: model)")
    p.add_argument("--storage", choices=("int8", "fp16", "fp32"), default="int8",
                   help="weight storage of the model file (default int8: ~¼ of fp32)")
    p.add_argument("--metrics", type=Path, help="held-out metrics JSON to quote in the card (eval-bag / demo)")
    p.add_argument("--licence", default=None, help="licence line of the card (default: Apache-2.0 for weights the "
                   "project trained on its own synthetic drives; for weights trained on your data, the card says the "
                   "licence is yours to set)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.pack import DEFAULT_LICENCE, pack_model

    res = pack_model(args.model, args.output, args.name, args.storage, args.metrics, args.licence or DEFAULT_LICENCE)
    for k, v in res.sizes.items():
        print(f"{args.output / k}: {v / 1e6:.1f} MB")
    print(f"storage drift: mean {100 * res.drift['mean_rel']:.3f} % of the network output; card: {res.card}")
    return 0
