# Source on the GPU machine, from the repository root, with .llama-bin carried:
#   . bench/calibrate/llamacpp/device_env.sh
# Unpacks the llama.cpp binaries built by bench/calibrate/llamacpp/build.sh into $LLAMA_BIN and puts
# them and cuBLAS (from the image's PyTorch wheels, nvidia-cublas cu13) on LD_LIBRARY_PATH.
LLAMA_BIN=${LLAMA_BIN:-/tmp/llama/bin}
if [ ! -x "$LLAMA_BIN/llama-server" ]; then
    mkdir -p "$(dirname "$LLAMA_BIN")"
    cat .llama-bin/llama-bin.tar.xz.part-* | xz -d -T16 | tar -x -C "$(dirname "$LLAMA_BIN")"
fi
CUBLAS_DIR=$(python3 -c "import nvidia, glob, os; print(next((os.path.dirname(f) for p in nvidia.__path__ for f in glob.glob(p + '/cu13/lib/libcublas.so.13*')), ''))" 2>/dev/null)
[ -n "$CUBLAS_DIR" ] || CUBLAS_DIR=$(dirname "$(find / -xdev -name 'libcublas.so.13*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$LLAMA_BIN:$CUBLAS_DIR:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export LLAMA_BIN
echo "llama.cpp binaries in $LLAMA_BIN; cuBLAS from $CUBLAS_DIR"
