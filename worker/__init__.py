"""segments worker: the domain (rule language, compiler, builds) and its message consumers."""
