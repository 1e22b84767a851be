// NativeProgram: a loaded program's fd, owned: BPF_PROG_TEST_RUN and XDP attachment.
#include "common.h"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace xvs {

namespace {

uint32_t OptionalU32(Napi::Object opts, const char* key, uint32_t fallback) {
  Napi::Value value = opts.Get(key);
  if (IsNullish(value)) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(opts.Env(), std::string(key) + " must be a number");
  return value.As<Napi::Number>().Uint32Value();
}

Napi::Buffer<uint8_t> OptionalBuffer(Napi::Object opts, const char* key) {
  Napi::Value value = opts.Get(key);
  if (IsNullish(value)) return Napi::Buffer<uint8_t>();
  if (!value.IsBuffer()) throw Napi::TypeError::New(opts.Env(), std::string(key) + " must be a Buffer");
  return value.As<Napi::Buffer<uint8_t>>();
}

class Program : public Napi::ObjectWrap<Program> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeProgram",
                       {
                           InstanceAccessor<&Program::Name>("name"),
                           InstanceAccessor<&Program::Fd>("fd"),
                           InstanceAccessor<&Program::Type>("type"),
                           InstanceMethod<&Program::TestRun>("testRun"),
                           InstanceMethod<&Program::AttachXdp>("attachXdp"),
                           InstanceMethod<&Program::Close>("close"),
                       });
  }

  explicit Program(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Program>(info) {
    const HandleInit& init = TakeHandleInit(info, "NativeProgram");
    fd_.Reset(init.fd);
    name_ = init.name;
    type_ = init.type;
  }


 private:
  int OpenFd(Napi::Env env) const { return fd_.Open(env, "program " + name_); }

  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }
  Napi::Value Type(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), type_); }

  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "testRun options must be an object");
    Napi::Object opts = info[0].As<Napi::Object>();
    Napi::Buffer<uint8_t> data = OptionalBuffer(opts, "data");
    if (data.IsEmpty()) throw Napi::TypeError::New(env, "data must be a Buffer");
    Napi::Buffer<uint8_t> ctx = OptionalBuffer(opts, "ctx");
    size_t ctxLength = ctx.IsEmpty() ? 0 : ctx.Length();

    LIBBPF_OPTS(bpf_test_run_opts, run);
    run.flags = OptionalU32(opts, "flags", 0);
    run.repeat = OptionalU32(opts, "repeat", 0);
    run.batch_size = OptionalU32(opts, "batchSize", 0);
    run.data_in = data.Data();
    run.data_size_in = data.Length();
    // Live frames go out through the stack; the kernel refuses an output buffer then.
    bool liveFrames = run.flags & BPF_F_TEST_XDP_LIVE_FRAMES;
    std::vector<uint8_t> dataOut(liveFrames ? 0 : OptionalU32(opts, "dataSizeOut", data.Length() + 256));
    run.data_out = dataOut.empty() ? nullptr : dataOut.data();
    run.data_size_out = dataOut.size();
    std::vector<uint8_t> ctxOut(OptionalU32(opts, "ctxSizeOut", ctxLength));
    if (ctxLength > 0) {
      run.ctx_in = ctx.Data();
      run.ctx_size_in = ctxLength;
    }
    run.ctx_out = ctxOut.empty() ? nullptr : ctxOut.data();
    run.ctx_size_out = ctxOut.size();

    Check(env, bpf_prog_test_run_opts(fd, &run), "bpf_prog_test_run_opts(" + name_ + ")");

    Napi::Object result = Napi::Object::New(env);
    result.Set("retval", run.retval);
    result.Set("duration", run.duration);
    size_t dataSize = std::min<size_t>(run.data_size_out, dataOut.size());
    result.Set("data", Napi::Buffer<uint8_t>::Copy(env, dataOut.data(), dataSize));
    size_t ctxSize = std::min<size_t>(run.ctx_size_out, ctxOut.size());
    result.Set("ctx", ctxOut.empty() ? env.Null()
                                     : Napi::Buffer<uint8_t>::Copy(env, ctxOut.data(), ctxSize));
    return result;
  }

  Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    uint32_t ifindex = U32Arg(info, 0, "ifindex");
    uint32_t flags = U32Arg(info, 1, "flags");
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    opts.flags = flags;
    int link = bpf_link_create(fd, static_cast<int>(ifindex), BPF_XDP, &opts);
    if (link >= 0) return NewLink(env, link);
    std::string where = "ifindex " + std::to_string(ifindex);
    // ENOTSUPP (524) is what some drivers return for EOPNOTSUPP.
    if ((flags & XDP_FLAGS_DRV_MODE) && (-link == EOPNOTSUPP || -link == 524)) {
      ThrowErrno(env, -link, "XDP native mode not supported by " + where);
    }
    ThrowErrno(env, -link, "bpf_link_create(" + name_ + ", " + where + ", BPF_XDP)");
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    fd_.Reset();
    return info.Env().Undefined();
  }

  OwnedFd fd_;
  std::string name_;
  uint32_t type_ = 0;
};

}  // namespace

void InitProgram(Napi::Env env, Constructors& ctors) {
  ctors.program = Napi::Persistent(Program::Define(env));
}

Napi::Object NewProgram(Napi::Env env, int fd, const std::string& name, uint32_t type) {
  HandleInit init{fd, name, type};
  return Ctors(env).program.New({Napi::External<HandleInit>::New(env, &init)});
}

}  // namespace xvs
