"""``bs4nn data``: load and verify the datasets."""

from bs4nn.model import data


def add_arguments(parser):
    parser.add_argument("--check", action="store_true",
                        help="load every split of every dataset and verify it (the default)")
    parser.add_argument("--dataset", choices=data.DATASETS, action="append",
                        help="only this dataset (repeatable)")
    parser.add_argument("--data-dir", help="directory with the four standard IDX files")


def run(args):
    for dataset in args.dataset or data.DATASETS:
        for line in data.dataset_summary(dataset, args.data_dir):
            print(line)
    print(f"all checks passed (cache: {data.cache_dir()})")
    return 0
