"""Reference implementations, one model per file; impl files never import each other."""
