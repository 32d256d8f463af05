# The traced-bpf service core, driven directly (no sockets).
tb_unit_test(NAME service_core_test SOURCES unit/service_core_test.c LIBS tb_service_core)
tb_unit_test(NAME service_packets_test SOURCES unit/service_packets_test.c LIBS tb_service_core)
tb_unit_test(NAME service_embedded_test SOURCES unit/service_embedded_test.c LIBS tb_service_core)
tb_unit_test(NAME service_hostile_test SOURCES unit/service_hostile_test.c LIBS tb_service_core)
# ReadBuffers of a full 64 MiB buffer through the real ConsumerPort, with the
# transmit queue's peak checked.
tb_unit_test(NAME service_stream_test SOURCES unit/service_stream_test.c LIBS tb_service_core
             TIMEOUT 180)
# Trusted sequence ids across recycled writer and producer ids.
tb_unit_test(NAME service_seq_test SOURCES unit/service_seq_test.c LIBS tb_service_core)
# ReadBuffers' limit is on silence: a slow fake ConsumerPort outlasts it, a
# stalled one fails the read with what was written reported, and tracebpf
# record keeps a read cut short as FILE.partial.
tb_unit_test(NAME service_cc_read_test SOURCES unit/service_cc_read_test.c LIBS tb_consumer
             TIMEOUT 60)
