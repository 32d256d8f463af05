# The traced-bpf daemon end to end: the real binary on real sockets in a temp
# dir, test producers writing raw chunks, the consumer client reading back
# (and tracebpf info reading a compressed ReadBuffers file).
tb_unit_test(NAME service_e2e_test SOURCES integration/service_e2e_test.c
             LIBS tb_service_core LABELS integration TIMEOUT 180)
add_dependencies(service_e2e_test traced-bpf tracebpf_cli)

tb_unit_test(NAME service_daemon_test SOURCES integration/service_daemon_test.c
             LIBS tb_service_core LABELS integration TIMEOUT 60)
add_dependencies(service_daemon_test traced-bpf)

# A producer that never reads its socket: dropped past its queue limit while
# another producer and a consumer finish a session on the real daemon.
tb_unit_test(NAME service_stuck_test SOURCES integration/service_stuck_test.c
             LIBS tb_service_core LABELS integration TIMEOUT 120)
add_dependencies(service_stuck_test traced-bpf)

# Producer-provided SMBs (startup tracing): a sealed memfd is adopted, an
# unsealed or badly sized one refused and closed, and the producer then works
# on a service SMB.
tb_unit_test(NAME service_smb_test SOURCES integration/service_smb_test.c
             LIBS tb_service_core LABELS integration TIMEOUT 60)
add_dependencies(service_smb_test traced-bpf)
