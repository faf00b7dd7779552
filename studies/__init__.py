"""Bundled study definitions (TOML). Data, not code: `search.study.load_study(name)` reads them."""
