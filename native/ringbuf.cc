// NativeRingBuffer: a BPF ring buffer read synchronously on the JS thread by poll().
#include "common.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

namespace xvs {

namespace {

class RingBuffer : public Napi::ObjectWrap<RingBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRingBuffer",
                       {
                           InstanceMethod<&RingBuffer::Poll>("poll"),
                           InstanceMethod<&RingBuffer::Close>("close"),
                       });
  }

  // Called with (External<HandleInit> holding a dup of the map fd, callback).
  explicit RingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuffer>(info) {
    Napi::Env env = info.Env();
    mapFd_ = TakeHandleInit(info, "NativeRingBuffer").fd;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    ring_ = ring_buffer__new(mapFd_, OnRecord, this, nullptr);
    if (!ring_) {
      int err = errno;
      Free();
      ThrowErrno(env, err, "ring_buffer__new");
    }
  }

  ~RingBuffer() override { Free(); }

 private:
  // libbpf is C: a JS exception must not unwind through it. Keep it, stop consuming
  // (libbpf has already moved past this record), and rethrow it from poll().
  // A callback that closed the ring gets no more records.
  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBuffer*>(ctx);
    if (self->closeRequested_) return -1;
    Napi::Env env = self->Env();
    try {
      self->callback_.Call({Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t*>(data), size)});
    } catch (const Napi::Error& error) {
      self->pending_ = error;
      return -1;
    }
    self->delivered_++;
    return 0;
  }

  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ring_) ThrowError(env, EBADF, "ring buffer is closed");
    if (polling_) ThrowError(env, EBUSY, "ring buffer poll() called from its own callback");
    int timeout = static_cast<int>(U32Arg(info, 0, "timeoutMs"));
    polling_ = true;
    delivered_ = 0;
    int err = ring_buffer__poll(ring_, timeout);
    polling_ = false;
    if (closeRequested_) Free();
    if (pending_) {
      Napi::Error error = *pending_;
      pending_.reset();
      throw error;
    }
    // Negative: a callback stopped the poll (handled above), or epoll failed.
    if (err < 0 && err != -EINTR && ring_) Check(env, err, "ring_buffer__poll");
    return Napi::Number::New(env, delivered_);
  }

  // A callback may close the ring it is called from: free it once poll() returns.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (polling_) {
      closeRequested_ = true;
    } else {
      Free();
    }
    return info.Env().Undefined();
  }

  void Free() {
    ring_buffer__free(ring_);
    ring_ = nullptr;
    if (mapFd_ >= 0) close(mapFd_);
    mapFd_ = -1;
    callback_.Reset();
  }

  struct ring_buffer* ring_ = nullptr;
  int mapFd_ = -1;
  Napi::FunctionReference callback_;
  std::optional<Napi::Error> pending_;
  int delivered_ = 0;
  bool polling_ = false;
  bool closeRequested_ = false;
};

}  // namespace

void InitRingBuffer(Napi::Env env, Constructors& ctors) {
  ctors.ringBuffer = Napi::Persistent(RingBuffer::Define(env));
}

Napi::Value NewRingBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int mapFd = MapFd(info[0]);
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  // The ring maps the map's memory: keep its own fd so it outlives the NativeMap.
  int fd = fcntl(mapFd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, errno, "dup(ring buffer map)");
  HandleInit init{fd, "", 0};
  return Ctors(env).ringBuffer.New({Napi::External<HandleInit>::New(env, &init), info[1]});
}

}  // namespace xvs
