# BpfObject.cmake - compile BPF CO-RE programs and generate their skeletons.
#
#   tb_bpf_vmlinux_h(OUT var)         vmlinux.h for the running kernel (or the
#                                      checked-in per-arch copy); sets var to
#                                      the directory holding it.
#   tb_bpf_object(NAME n SOURCE n.bpf.c [DEPENDS h...])
#       n.bpf.c -> n.bpf.o (clang -target bpf -g -O2, DWARF stripped)
#       -> n.skel.h (bpftool gen skeleton), exported as INTERFACE target n_skel.
#
# clang for the BPF target does not know the host's system include dirs, so
# they are taken once from `clang -v` and passed with -idirafter. The ">"
# redirections below rely on both Makefile and Ninja generators running
# custom commands through a shell (no VERBATIM on purpose).

find_program(TB_BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(TB_BPF_STRIP NAMES llvm-strip llvm-strip-14 REQUIRED)
find_program(TB_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin /usr/local/sbin)
if(NOT TB_BPFTOOL)
  message(FATAL_ERROR "bpftool not found: install the Debian package 'bpftool' "
                      "(scripts/setup.sh --deps) or pass -DTB_BUILD_BPF=OFF")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|amd64|AMD64")
  set(TB_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(TB_BPF_ARCH arm64)
else()
  set(TB_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

execute_process(COMMAND ${TB_BPF_CLANG} -v -E -
                INPUT_FILE /dev/null OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
string(REGEX MATCH "#include <...> search starts here:\n(.*)End of search list" _m "${_err}")
string(REGEX REPLACE "\n +" ";" _dirs "${CMAKE_MATCH_1}")
set(TB_BPF_SYS_INCLUDES)
foreach(d ${_dirs})
  string(STRIP "${d}" d)
  if(d)
    list(APPEND TB_BPF_SYS_INCLUDES -idirafter ${d})
  endif()
endforeach()

function(tb_bpf_vmlinux_h)
  cmake_parse_arguments(V "" "OUT" "" ${ARGN})
  set(btf /sys/kernel/btf/vmlinux)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/vmlinux)
  set(fallback ${CMAKE_CURRENT_SOURCE_DIR}/vmlinux/${TB_BPF_ARCH}/vmlinux.h)
  if(EXISTS ${btf})
    add_custom_command(
      OUTPUT ${dir}/vmlinux.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
      COMMAND ${TB_BPFTOOL} btf dump file ${btf} format c > ${dir}/vmlinux.h.tmp
      COMMAND ${CMAKE_COMMAND} -E rename ${dir}/vmlinux.h.tmp ${dir}/vmlinux.h
      COMMENT "vmlinux.h from ${btf}")
    add_custom_target(tb_vmlinux_h DEPENDS ${dir}/vmlinux.h)
  elseif(EXISTS ${fallback})
    message(STATUS "bpf: ${btf} missing, using checked-in ${fallback}")
    file(MAKE_DIRECTORY ${dir})
    configure_file(${fallback} ${dir}/vmlinux.h COPYONLY)
    add_custom_target(tb_vmlinux_h)
  else()
    message(FATAL_ERROR
      "bpf: no kernel BTF at ${btf} and no fallback ${fallback}.\n"
      "Build on a kernel with CONFIG_DEBUG_INFO_BTF=y, generate the fallback with\n"
      "  bpftool btf dump file /sys/kernel/btf/vmlinux format c > ${fallback}\n"
      "on such a machine, or configure with -DTB_BUILD_BPF=OFF.")
  endif()
  set(${V_OUT} ${dir} PARENT_SCOPE)
endfunction()

function(tb_bpf_object)
  cmake_parse_arguments(B "" "NAME;SOURCE;VMLINUX_DIR" "DEPENDS" ${ARGN})
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${B_SOURCE})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${B_NAME}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${B_NAME}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${TB_BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${TB_BPF_ARCH}
            -Wall -Werror -I${B_VMLINUX_DIR} -I${CMAKE_CURRENT_SOURCE_DIR}
            -I${CMAKE_SOURCE_DIR} ${TB_BPF_SYS_INCLUDES}
            -MD -MF ${obj}.d -c ${src} -o ${obj}
    COMMAND ${TB_BPF_STRIP} -g ${obj}
    DEPFILE ${obj}.d
    DEPENDS ${src} ${B_DEPENDS} tb_vmlinux_h ${B_VMLINUX_DIR}/vmlinux.h
    COMMENT "BPF ${B_NAME}.bpf.o")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${TB_BPFTOOL} gen skeleton ${obj} name ${B_NAME}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${B_NAME}.skel.h")
  add_custom_target(${B_NAME}_skel_gen DEPENDS ${skel})
  add_library(${B_NAME}_skel INTERFACE)
  add_dependencies(${B_NAME}_skel ${B_NAME}_skel_gen)
  # Only the build dir: bpf/sched.h would shadow <sched.h>; the record
  # headers are included as "bpf/<stem>.h" from the source root.
  target_include_directories(${B_NAME}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(${B_NAME}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
