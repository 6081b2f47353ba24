#!/usr/bin/env bash
# Builds what a lent GPU machine needs to run the device check, packed to
# fit one call (64 MiB): a minimal FFmpeg 5.1 from Debian's source package
# (only the demuxers, codecs, filters and hwaccels spotenc uses, plus
# NVENC/NVDEC/CUDA and the ffmpeg/ffprobe CLIs as the oracle), the
# spotenc, cpu-worker and gpu-worker binaries built against it, and the
# few shared libraries they need that a bare Debian/Ubuntu host lacks.
#
#   scripts/device-bundle.sh            # -> device/bundle.tar.xz
#
# The lent machine cannot reach a package registry; it runs
# scripts/device-check.sh from the unpacked bundle (see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${SPOTENC_DEVICE_CACHE:-$HOME/.cache/spotenc/device}
prefix=$cache/ffmpeg
mkdir -p "$cache" device

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Minimal FFmpeg 5.1 from Debian's own source package.
if [ ! -f "$prefix/lib/libavcodec.so" ]; then
  # deb-src entries for the mirror this machine already uses, taken from its
  # own apt sources (deb822 or one-line), so no host name is written here.
  if [ ! -f /etc/apt/sources.list.d/spotenc-src.sources ] && [ ! -f /etc/apt/sources.list.d/spotenc-src.list ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      # The first stanza (the main archive), as deb-src.
      awk 'BEGIN { RS = "" } NR == 1 { print; exit }' /etc/apt/sources.list.d/debian.sources |
        sed 's/^Types:.*/Types: deb-src/' | sudo_ tee /etc/apt/sources.list.d/spotenc-src.sources >/dev/null
    elif grep -qE '^deb ' /etc/apt/sources.list 2>/dev/null; then
      grep -E '^deb ' /etc/apt/sources.list | grep -v -- '-security' | sed 's/^deb /deb-src /' |
        sudo_ tee /etc/apt/sources.list.d/spotenc-src.list >/dev/null
    else
      echo "device-bundle: no apt sources found to derive deb-src entries from" >&2
      exit 1
    fi
    sudo_ apt-get update -qq
  fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    dpkg-dev libffmpeg-nvenc-dev libx264-dev libx265-dev nasm clang llvm xz-utils >/dev/null
  src=$cache/src
  if [ ! -d "$src" ]; then
    mkdir -p "$cache/dl"
    (cd "$cache/dl" && apt-get source -qq --download-only ffmpeg && dpkg-source -x ffmpeg_*.dsc "$src" >/dev/null)
  fi
  (
    cd "$src"
    ./configure --prefix="$prefix" --enable-shared --disable-static \
      --disable-doc --disable-debug --disable-autodetect \
      --enable-gpl --enable-libx264 --enable-libx265 \
      --enable-ffnvcodec --enable-nvenc --enable-nvdec --enable-cuda-llvm \
      --disable-everything \
      --enable-protocol=file,pipe,http,tcp \
      --enable-demuxer=mov,matroska,mpegts,nut,h264,hevc,aac,wav,lavfi \
      --enable-muxer=mp4,mov,matroska,nut,null,wav \
      --enable-decoder=h264,hevc,aac,pcm_s16le,rawvideo,wrapped_avframe \
      --enable-encoder=libx264,libx265,h264_nvenc,hevc_nvenc,aac,pcm_s16le,rawvideo,wrapped_avframe \
      --enable-parser=h264,hevc,aac \
      --enable-bsf=h264_mp4toannexb,hevc_mp4toannexb,aac_adtstoasc,extract_extradata,null \
      --enable-hwaccel=h264_nvdec,hevc_nvdec \
      --enable-filter=scale,format,null,anull,aresample,aformat,atrim,asetpts,trim,setpts,buffer,buffersink,abuffer,abuffersink,scale_cuda,hwupload_cuda,hwdownload,hwupload,psnr,testsrc2,sine,split \
      --enable-indev=lavfi >/dev/null
    make -j"$(nproc)" >/dev/null
    make install >/dev/null
  )
fi

# 2. The binaries, built against it (their own target dir: the FFmpeg
#    differs from the system one).
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export CARGO_TARGET_DIR=$cache/target
CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true \
  cargo build --release -q --bins -p spotenc-cli -p cpu-worker -p gpu-worker

# 3. The bundle: binaries, FFmpeg, and the libraries they load that are
#    not part of a base system.
stage=$cache/stage
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
cp "$CARGO_TARGET_DIR"/release/{spotenc,cpu-worker,gpu-worker} "$stage/bin/"
cp "$prefix"/bin/{ffmpeg,ffprobe} "$stage/bin/"
cp -a "$prefix"/lib/*.so* "$stage/lib/"
base='^(linux-vdso|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libgcc_s\.|ld-linux|libstdc\+\+\.)'
for f in "$stage"/bin/* "$stage"/lib/*.so.*; do
  LD_LIBRARY_PATH=$stage/lib ldd "$f" 2>/dev/null | awk '/=> \//{print $1, $3}'
done | sort -u | while read -r name path; do
  if ! [[ $name =~ $base ]] && [ ! -e "$stage/lib/$name" ]; then cp -L "$path" "$stage/lib/$name"; fi
done
cp scripts/device-check.sh "$stage/"
tar -C "$stage" -cJf device/bundle.tar.xz .
ls -l device/bundle.tar.xz
echo "unpacked: $(du -sh "$stage" | cut -f1); libraries: $(ls "$stage/lib" | wc -l)"
