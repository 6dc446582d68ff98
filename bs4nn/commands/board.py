"""``bs4nn board run``: stream test images to the accelerator on a board over its serial link
and check every result against the golden model; a design with run-time weights gets the
network's weight frame first."""

import numpy as np

from bs4nn.gen.board import BOARDS
from bs4nn.model.errors import UserError
from bs4nn.model.evaluation import load_matching
from bs4nn.sim import board_host

from .options import add_data_arguments, add_weights_argument


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run_parser = actions.add_parser("run", help="stream images and check the results")
    run_parser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    run_parser.add_argument("--board", default="ulx3s-85f", choices=list(BOARDS),
                            help="the board the bitstream was built for (sets the baud rate)")
    add_weights_argument(run_parser)
    add_data_arguments(run_parser)
    run_parser.add_argument("--n", type=int, default=1000, help="images (default 1000)")
    run_parser.add_argument("--design", default=None, metavar="SUMMARY_JSON",
                            help="the bitstream build's summary.json (build/board/BOARD/): "
                                 "with run-time weights, the weights are sent first")
    run_parser.add_argument("--upload-weights", action="store_true",
                            help="send the weights first (without --design: for the board "
                                 "build's defaults, all lanes, one event per cycle)")
    run_parser.add_argument("--reply-timeout", type=float, default=0.5,
                            help="seconds to wait for a frame's reply before counting it lost "
                                 "(default 0.5)")


def run(args):
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.reply_timeout <= 0:
        raise UserError(f"--reply-timeout must be positive, got {args.reply_timeout}")
    network, images, labels = load_matching(args.weights, args.dataset, args.split,
                                            args.data_dir)
    if args.n > len(images):
        raise UserError(f"--n {args.n}: the {args.dataset} {args.split} split has "
                        f"{len(images)} images")
    images, labels = images[:args.n], labels[:args.n]
    board = BOARDS[args.board]
    design = (board_host.read_design(args.design) if args.design
              else board_host.DesignParameters(board.weight_storage))
    upload = args.upload_weights or design.needs_weights
    with board_host.open_port(args.port, board.baud) as port:
        if upload:
            sent = board_host.send_weights(port, network, design, baud=board.baud,
                                           reply_timeout=args.reply_timeout)
        result = board_host.run_images(port, network, images, baud=board.baud,
                                       reply_timeout=args.reply_timeout)
    answered = result.predicted >= 0
    print(f"bs4nn board run: {args.n} images on {board.name} ({args.port}, "
          f"{board.baud:,} baud)")
    if upload:
        print(f"  weights {network.describe()} loaded: a {sent:,}-byte weight frame, "
              f"answered ok")
    print(f"  accuracy {np.mean(result.predicted == labels):.4f} "
          f"({int(answered.sum())} answered, {result.errors} error replies, "
          f"{result.lost} lost)")
    print(f"  agreement with the golden model: {result.agree}/{args.n}")
    if result.no_weights:
        print(f"  {result.no_weights} replies said the board holds no weights: it keeps them "
              f"in RAM; pass --design (its summary.json) or --upload-weights")
    print(f"  {result.images_per_second:.1f} images/s: the serial link bounds this at "
          f"{result.link_bound:.0f} images/s ({board.baud:,} baud), not the accelerator")
    return 0 if result.agree == args.n else 1
