# The producer client against the real traced-bpf daemon (--no-probes,
# sockets in a temp dir): N packets per writer thread in, N read back, then
# a daemon restart with reconnect and a second session.
tb_unit_test(NAME producer_client_integration_test SOURCES integration/producer_client_test.c
             LIBS tb_common LABELS integration TIMEOUT 120)
add_dependencies(producer_client_integration_test traced-bpf)
