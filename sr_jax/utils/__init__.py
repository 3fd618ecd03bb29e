"""Small pieces every layer may use: atomic file writes and the write-failure
test (`io_utils`), the workdir lock (`run_lock`), the scalars CSV
(`scalar_csv`) and multi-process start-up (`distributed`)."""
