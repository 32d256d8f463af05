# IPC layer fuzz targets (built only with -DTB_FUZZ=ON and clang).
tb_fuzz_target(NAME ipc_frame_fuzz SOURCES fuzz/ipc_frame_fuzz.c LIBS tb_common)
