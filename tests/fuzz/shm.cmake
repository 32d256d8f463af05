# Fuzzing the untrusted chunk reader and patch application.
tb_fuzz_target(NAME chunk_fuzz SOURCES fuzz/chunk_fuzz.c LIBS tb_common)
