// NativeLink: a BPF link fd, owned. Closing the last fd of an unpinned link detaches it.
#include "common.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>

namespace xvs {

namespace {

class Link : public Napi::ObjectWrap<Link> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeLink",
                       {
                           InstanceAccessor<&Link::Fd>("fd"),
                           InstanceAccessor<&Link::Ifindex>("ifindex"),
                           InstanceMethod<&Link::Pin>("pin"),
                           InstanceMethod<&Link::Detach>("detach"),
                           InstanceMethod<&Link::Close>("close"),
                       });
  }

  explicit Link(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Link>(info) {
    fd_.Reset(TakeHandleInit(info, "NativeLink").fd);
  }


 private:
  int OpenFd(Napi::Env env) const { return fd_.Open(env, "link"); }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }

  // Asked each time: a detached link reports 0.
  Napi::Value Ifindex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_link_info linkInfo = {};
    __u32 length = sizeof(linkInfo);
    Check(env, bpf_obj_get_info_by_fd(OpenFd(env), &linkInfo, &length), "bpf_obj_get_info_by_fd(link)");
    uint32_t ifindex = linkInfo.type == BPF_LINK_TYPE_XDP ? linkInfo.xdp.ifindex : 0;
    return Napi::Number::New(env, ifindex);
  }

  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = StringArg(info, 0, "path");
    Check(env, bpf_obj_pin(OpenFd(env), path.c_str()), "bpf_obj_pin(link, " + path + ")");
    return env.Undefined();
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Check(env, bpf_link_detach(OpenFd(env)), "bpf_link_detach");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    fd_.Reset();
    return info.Env().Undefined();
  }

  OwnedFd fd_;
};

}  // namespace

void InitLink(Napi::Env env, Constructors& ctors) { ctors.link = Napi::Persistent(Link::Define(env)); }

Napi::Object NewLink(Napi::Env env, int fd) {
  HandleInit init{fd, "", 0};
  return Ctors(env).link.New({Napi::External<HandleInit>::New(env, &init)});
}

Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  Check(env, fd, "bpf_obj_get(" + path + ")");
  if (!FdInfoHas(fd, "link_type:")) {
    close(fd);
    ThrowError(env, EINVAL, path + " is not a BPF link");
  }
  return NewLink(env, fd);
}

}  // namespace xvs
