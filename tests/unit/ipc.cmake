# IPC layer: event loop, framing, sockets, host and client (real sockets).
tb_unit_test(NAME ipc_frame_test SOURCES unit/ipc_frame_test.c LIBS tb_common)
tb_unit_test(NAME ipc_loop_test SOURCES unit/ipc_loop_test.c LIBS tb_common)
tb_unit_test(NAME ipc_sock_test SOURCES unit/ipc_sock_test.c LIBS tb_common)
tb_unit_test(NAME ipc_host_test SOURCES unit/ipc_host_test.c LIBS tb_common)
tb_unit_test(NAME ipc_host_accept_test SOURCES unit/ipc_host_accept_test.c LIBS tb_common)
