#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtual environment in .venv with the package,
# its dev extras, Horovod built with PyTorch and Gloo, and the Delta Lake jars resolved.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${SHL_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
horovod_version="0.28.1"

log() { printf '[setup] %s\n' "$*"; }

if ! command -v java >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing a Java runtime for Spark (openjdk-17-jre-headless)"
        apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    else
        echo "[setup] Spark needs Java 8, 11 or 17 and no 'java' is on the PATH; install a JDK 17 and retry" >&2
        exit 1
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

# wheel is needed because setuptools < 70 (a petastorm requirement) has no bdist_wheel
# of its own, and Horovod is built without build isolation.
# The install is skipped while pyproject.toml is unchanged since the last one.
stamp="$venv/.shl-pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "package and dependencies already installed for this pyproject.toml"
else
    pip install --quiet --disable-pip-version-check "pip<25" wheel "setuptools<70"
    log "installing the shl package with dev extras"
    pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$want" >"$stamp"
fi

horovod_ready() {
    local check
    check="$(horovodrun --check-build 2>/dev/null || true)"
    grep -Eq '\[X\] PyTorch' <<<"$check" && grep -Eq '\[X\] Gloo' <<<"$check"
}

if command -v horovodrun >/dev/null 2>&1 && horovod_ready; then
    log "horovod $horovod_version already built with PyTorch and Gloo"
else
    log "building horovod $horovod_version with PyTorch and Gloo (several minutes)"
    build_dir="$(mktemp -d)"
    trap 'rm -rf "$build_dir"' EXIT
    # Horovod 0.28.1 compiles its PyTorch extension as C++14, but PyTorch >= 2.1
    # headers need C++17, so a compiler wrapper rewrites the standard flag.
    cat >"$build_dir/cxx17" <<'WRAP'
#!/usr/bin/env bash
args=()
for a in "$@"; do
    case "$a" in
        -std=c++14) args+=("-std=c++17") ;;
        -std=gnu++14) args+=("-std=gnu++17") ;;
        *) args+=("$a") ;;
    esac
done
exec g++ "${args[@]}"
WRAP
    chmod +x "$build_dir/cxx17"

    extra_env=()
    cuda_home="$(python -c 'from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or "")')"
    if [ -n "$cuda_home" ]; then
        # A CUDA build of torch with a CUDA home makes Horovod build a CUDA extension,
        # which needs the CUDA runtime headers and an unversioned libcudart.so. The
        # nvidia wheels that torch installs carry both under versioned names.
        nvidia_dir="$(python -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0] + "/x"))')"
        cuda_root="$build_dir/cuda"
        mkdir -p "$cuda_root/lib64"
        include_dir="$(find "$nvidia_dir" -path '*/include/cuda_runtime.h' -printf '%h\n' | head -n 1)"
        if [ -z "$include_dir" ]; then
            echo "[setup] torch finds CUDA at $cuda_home, but no cuda_runtime.h was found under $nvidia_dir;" \
                 "install the CUDA toolkit or unset CUDA_HOME and retry" >&2
            exit 1
        fi
        ln -s "$include_dir" "$cuda_root/include"
        while IFS= read -r lib; do
            base="$(basename "$lib")"
            ln -sf "$lib" "$cuda_root/lib64/$base"
            ln -sf "$lib" "$cuda_root/lib64/${base%%.so.*}.so"
        done < <(find "$nvidia_dir" -name 'lib*.so.*' -path '*/lib/*')
        extra_env+=("CUDAToolkit_ROOT=$cuda_root" "CUDA_HOME=$cuda_root")
        log "using a CUDA toolkit folder made from the nvidia wheels: $cuda_root"
    fi

    # Horovod vendors Gloo, whose CMakeLists requires a CMake policy older than 3.5, which CMake 4 rejects.
    env "${extra_env[@]}" CXX="$build_dir/cxx17" \
        CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
        HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=GLOO \
        MAKEFLAGS="-j$(nproc)" \
        pip install --quiet --disable-pip-version-check --no-build-isolation --no-cache-dir \
        "horovod==$horovod_version"
    if ! horovod_ready; then
        echo "[setup] horovod installed but 'horovodrun --check-build' does not list PyTorch and Gloo:" >&2
        horovodrun --check-build >&2 || true
        exit 1
    fi
    log "horovod built"
fi

if ls "$HOME"/.ivy2/jars/io.delta_delta-spark_2.12-*.jar >/dev/null 2>&1; then
    log "Delta Lake jars already in ~/.ivy2"
else
    log "resolving the Delta Lake jars (cached by Ivy in ~/.ivy2 after the first run)"
    python -m shl.spark --resolve-jars
fi
log "done: activate with '. $venv/bin/activate'"
