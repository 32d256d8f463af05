# Docs drift checks: every option a program's --help prints is in its man
# page and in its docs/*.md page, and every option those pages name is one
# --help prints. Registered only for programs this build has; a registered
# program whose binary is missing fails the test loudly.
set(TB_DOCS_CHECK ${TB_TEST_DIR}/docs_check.sh)
set(TB_DOCS ${CMAKE_SOURCE_DIR}/docs)

# tb_docs_options_test(NAME n TARGET t MAN page MD page [SUB subcommand])
function(tb_docs_options_test)
  cmake_parse_arguments(D "" "NAME;TARGET;MAN;MD;SUB" "" ${ARGN})
  if(NOT TARGET ${D_TARGET})
    return()
  endif()
  add_test(NAME ${D_NAME}
           COMMAND sh ${TB_DOCS_CHECK} options ${TB_DOCS}/man/${D_MAN} ${TB_DOCS}/${D_MD}
                   $<TARGET_FILE:${D_TARGET}> ${D_SUB})
  set_tests_properties(${D_NAME} PROPERTIES TIMEOUT 60 LABELS "integration;docs")
endfunction()

tb_docs_options_test(NAME docs_traced_bpf TARGET traced-bpf
                     MAN traced-bpf.8 MD traced-bpf.md)
tb_docs_options_test(NAME docs_traced_bpf_probes TARGET traced-bpf-probes
                     MAN traced-bpf-probes.8 MD traced-bpf-probes.md)
tb_docs_options_test(NAME docs_tracebpf TARGET tracebpf_cli
                     MAN tracebpf.1 MD tracebpf.md)
foreach(sub record export open info doctor stats ls)
  tb_docs_options_test(NAME docs_tracebpf_${sub} TARGET tracebpf_cli SUB ${sub}
                       MAN tracebpf-${sub}.1 MD tracebpf-${sub}.md)
endforeach()

if(EXISTS ${CMAKE_SOURCE_DIR}/include/tracebpf/tracebpf.h)
  add_test(NAME docs_libtracebpf_api
           COMMAND sh ${TB_DOCS_CHECK} api ${TB_DOCS}/man/libtracebpf.3
                   ${CMAKE_SOURCE_DIR}/include/tracebpf/tracebpf.h ${TB_DOCS}/libtracebpf.md)
  set_tests_properties(docs_libtracebpf_api PROPERTIES TIMEOUT 60 LABELS "integration;docs")
endif()

file(GLOB TB_MAN_PAGES CONFIGURE_DEPENDS ${TB_DOCS}/man/*.[138])
list(SORT TB_MAN_PAGES)
add_test(NAME docs_man_render COMMAND sh ${TB_DOCS_CHECK} render ${TB_MAN_PAGES})
set_tests_properties(docs_man_render PROPERTIES TIMEOUT 60 LABELS "integration;docs")

# Install layout: cmake --install into a scratch prefix, then the programs,
# man pages, systemd unit, library, headers and pkg-config file a user gets;
# the libtracebpf(3) example is built against the installed library.
set(TB_DOCS_PROGRAMS)
foreach(t traced-bpf tracebpf_cli traced-bpf-probes)
  if(TARGET ${t})
    list(APPEND TB_DOCS_PROGRAMS $<TARGET_FILE_NAME:${t}>)
  endif()
endforeach()
set(TB_DOCS_APP_CFLAGS "")
if(TB_SANITIZE)
  set(TB_DOCS_APP_CFLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME docs_install
         COMMAND sh ${TB_TEST_DIR}/docs_install.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
                 ${CMAKE_C_COMPILER} "${TB_DOCS_APP_CFLAGS}" ${TB_DOCS_PROGRAMS})
set_tests_properties(docs_install PROPERTIES TIMEOUT 120 LABELS "integration;docs"
                     ENVIRONMENT "CMAKE=${CMAKE_COMMAND}")
