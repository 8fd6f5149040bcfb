// Shared test helpers live here (kernel lock, KSM snapshot/restore, mergeable buffers, binaries).
