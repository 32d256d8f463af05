# Producer client: handshake, commands, commits and reconnects against a fake
# service on the real IPC host, real UNIX sockets and a real memfd SMB.
tb_unit_test(NAME producer_client_test SOURCES unit/producer_client_test.c LIBS tb_common
             TIMEOUT 120)
