# Central trace buffer and packet validator (service/trace_buffer*.c,
# service/packet_validator.c). The sources are compiled in directly so these
# tests do not depend on the rest of the service library building.
tb_unit_test(NAME trace_buffer_test
             SOURCES unit/trace_buffer_test.c ../service/trace_buffer.c
                     ../service/trace_buffer_index.c ../service/trace_buffer_read.c
             LIBS tb_common)
tb_unit_test(NAME trace_buffer_recopy_test
             SOURCES unit/trace_buffer_recopy_test.c ../service/trace_buffer.c
                     ../service/trace_buffer_index.c ../service/trace_buffer_read.c
             LIBS tb_common)
tb_unit_test(NAME trace_buffer_frag_test
             SOURCES unit/trace_buffer_frag_test.c ../service/trace_buffer.c
                     ../service/trace_buffer_index.c ../service/trace_buffer_read.c
             LIBS tb_common)
tb_unit_test(NAME packet_validator_test
             SOURCES unit/packet_validator_test.c ../service/packet_validator.c
             LIBS tb_common)
