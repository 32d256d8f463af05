# Central trace buffer + packet validator fuzzing (sources compiled in
# directly, like the unit tests). Long runs by hand:
#   build-x/tests/trace_buffer_fuzz -max_total_time=60 build-x/fuzz-corpus/trace_buffer_fuzz
tb_fuzz_target(NAME trace_buffer_fuzz
               SOURCES fuzz/trace_buffer_fuzz.c ../service/trace_buffer.c ../service/packet_validator.c
                       ../service/trace_buffer_index.c ../service/trace_buffer_read.c
               LIBS tb_common)
tb_fuzz_target(NAME validator_fuzz
               SOURCES fuzz/validator_fuzz.c ../service/packet_validator.c
               LIBS tb_common)
# Duplicate suppression over scrapes/commits/reads/evictions and writer
# forgetting: no packet may come out twice.
tb_fuzz_target(NAME trace_buffer_recopy_fuzz
               SOURCES fuzz/trace_buffer_recopy_fuzz.c ../service/trace_buffer.c
                       ../service/trace_buffer_index.c ../service/trace_buffer_read.c
               LIBS tb_common)
