"""The benchmarks (`sr-search bench ...`) and the GPU scripts (`python3 -m search.bench.gpu`): tooling
that measures the product. It depends on the product; nothing in the product depends on it (only
`search.cli` imports it, to offer the `bench` command)."""
