"""Commands and measuring tools built on the library: the `piposer` CLI, COCO evaluation, benchmarks."""
