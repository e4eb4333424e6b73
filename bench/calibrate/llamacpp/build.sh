#!/usr/bin/env bash
# Build llama.cpp (CUDA, sm_90 only) for the H100 bench WITHOUT a GPU, and pack it for `carry`.
#
# Source: the llama-cpp-python sdist on PyPI vendors llama.cpp (0.3.36 -> ggml-org/llama.cpp@0c1e57098).
# Built on a CPU-only machine with CUDA 13.0's nvcc: cuBLAS comes from the nvidia-cublas 13.0 wheel
# (headers + libcublas.so.13 to link against) and libcuda.so.1 from a stub made here (the real one is
# the GPU machine's driver). At run time the GPU machine's own cuBLAS (the image's PyTorch wheels)
# and driver are used: see device_env.sh.  On a machine with a GPU and a full toolkit, the plain
# `cmake -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90-real ...` line below works without the stubs.
#
#   bench/calibrate/llamacpp/build.sh            # -> .llama-bin/llama-bin.tar.xz.part-*
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=${WORK:-/tmp/llama-build}
JOBS=${JOBS:-$(nproc)}
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
COMMIT=${LLAMA_CPP_COMMIT:-0c1e57098}
mkdir -p "$WORK" "$ROOT/.llama" "$ROOT/.llama-bin"
cd "$WORK"

# 1. source, trimmed (docs, tests, examples, web UI sources, other backends, unused vocabs)
if [ ! -d "$ROOT/.llama/src/llama.cpp" ]; then
    pip download --no-deps --no-binary :all: "llama-cpp-python==$VER" -d .
    tar xzf "llama_cpp_python-$VER.tar.gz"
    S="$WORK/llama_cpp_python-$VER/vendor/llama.cpp"; D="$ROOT/.llama/src/llama.cpp"
    mkdir -p "$D/ggml/src" "$D/tools/ui" "$D/scripts" "$ROOT/.llama/models"
    (cd "$S" && cp -r CMakeLists.txt cmake common include src vendor LICENSE "$D/" \
        && cp -r ggml/CMakeLists.txt ggml/cmake ggml/include "$D/ggml/" \
        && cp ggml/src/*.* "$D/ggml/src/" && cp -r ggml/src/ggml-cpu ggml/src/ggml-cuda ggml/src/ggml-blas "$D/ggml/src/" \
        && cp scripts/ui-assets.cmake "$D/scripts/" \
        && for t in batched-bench llama-bench quantize server cli mtmd; do cp -r tools/$t "$D/tools/"; done \
        && cp tools/ui/CMakeLists.txt tools/ui/ui.cpp.in tools/ui/ui.h.in tools/ui/sources.cmake "$D/tools/ui/" \
        && cp -r gguf-py "$ROOT/.llama/gguf-py" \
        && cp models/ggml-vocab-llama-bpe.gguf models/ggml-vocab-qwen2.gguf "$ROOT/.llama/models/")
    cat > "$D/tools/CMakeLists.txt" <<'EOF'
# trimmed for the advisor bench (bench/calibrate/llamacpp): only the tools it runs
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(batched-bench)
add_subdirectory(llama-bench)
add_subdirectory(quantize)
if (LLAMA_BUILD_SERVER)
    add_subdirectory(ui)
    add_subdirectory(server)
endif()
add_subdirectory(mtmd)
EOF
fi

# 2. link-time stand-ins when there is no GPU driver / cuBLAS here
EXTRA=()
LINK=""
if ! ldconfig -p | grep -q 'libcuda.so '; then
    mkdir -p "$WORK/cudastub"
    syms="cuDeviceGet cuDeviceGetAttribute cuGetErrorString cuMemAddressFree cuMemAddressReserve cuMemCreate
          cuMemGetAllocationGranularity cuMemMap cuMemRelease cuMemSetAccess cuMemUnmap cuGetProcAddress cuDriverGetVersion cuInit"
    (echo '#include <cuda.h>'; for n in $syms; do echo "SYM $n"; done) | gcc -E -I/usr/local/cuda/include - \
        | awk '/^SYM/{print "int " $2 "(void){return 999;}"}' > "$WORK/cudastub/stub.c"
    gcc -shared -fPIC -o "$WORK/cudastub/libcuda.so" "$WORK/cudastub/stub.c" -Wl,-soname,libcuda.so.1
    ln -sf libcuda.so "$WORK/cudastub/libcuda.so.1"
    EXTRA+=(-DCUDA_cuda_driver_LIBRARY="$WORK/cudastub/libcuda.so")
    LINK="-Wl,-rpath-link,$WORK/cudastub"
fi
if [ ! -e /usr/local/cuda/include/cublas_v2.h ]; then
    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_27_x86_64 \
        'nvidia-cublas==13.0.*' -d "$WORK/cublas"
    (cd "$WORK/cublas" && unzip -q -o ./*.whl -d x)
    CB="$WORK/cublas/x/nvidia/cu13"
    EXTRA+=(-DCUDA_cublas_LIBRARY="$CB/lib/libcublas.so.13" -DCUDA_cublasLt_LIBRARY="$CB/lib/libcublasLt.so.13"
            "-DCMAKE_CUDA_FLAGS=-I$CB/include" "-DCMAKE_CXX_FLAGS=-I$CB/include" "-DCMAKE_C_FLAGS=-I$CB/include")
    LINK="${LINK:-} -Wl,-rpath-link,$CB/lib"
fi
[ -n "${LINK:-}" ] && EXTRA+=("-DCMAKE_EXE_LINKER_FLAGS=$LINK" "-DCMAKE_SHARED_LINKER_FLAGS=$LINK")

# 3. configure + build (GIT_CEILING_DIRECTORIES: don't let build-info read the advisor repo's git)
export GIT_CEILING_DIRECTORIES="$ROOT/.llama/src"
cmake -S "$ROOT/.llama/src/llama.cpp" -B "$WORK/build-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_BUILD_COMMIT="$COMMIT" -DCMAKE_BUILD_RPATH='$ORIGIN' "${EXTRA[@]}"
ninja -C "$WORK/build-cuda" -j"$JOBS" llama-server llama-bench llama-batched-bench llama-quantize

# 4. pack: binaries + their shared libs, stripped, xz, split under the 16 MiB transfer limit
P="$WORK/pack/bin"; rm -rf "$WORK/pack"; mkdir -p "$P"
cp "$WORK"/build-cuda/bin/{llama-server,llama-bench,llama-batched-bench,llama-quantize} "$P/"
cp -P "$WORK"/build-cuda/bin/*.so* "$P/" 2>/dev/null || true
strip --strip-unneeded "$P"/* || true
rm -f "$ROOT"/.llama-bin/llama-bin.tar.xz.part-*
tar -C "$WORK/pack" -cf - bin | xz -9 -T"$JOBS" | split -b 15M - "$ROOT/.llama-bin/llama-bin.tar.xz.part-"
ls -la "$ROOT/.llama-bin"
