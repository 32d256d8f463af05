# Generated protobuf-c types (protos/): exact wire bytes of the messages
# every component depends on.
tb_unit_test(NAME protos_test SOURCES unit/protos_test.c LIBS tb_protos)
