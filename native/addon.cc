// Module init and the small system calls that need no handle.
#include "common.h"

#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>

namespace xvs {

Constructors& Ctors(Napi::Env env) { return *env.GetInstanceData<Constructors>(); }

namespace {

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int cpus = libbpf_num_possible_cpus();
  Check(info.Env(), cpus, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), cpus);
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) ThrowError(info.Env(), ENODEV, "no such interface: " + name);
  return Napi::Number::New(info.Env(), index);
}

Napi::Value Unpin(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  if (unlink(path.c_str()) < 0) ThrowErrno(info.Env(), errno, "unlink(" + path + ")");
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto* ctors = new Constructors();
  env.SetInstanceData(ctors);
  InitObject(env, *ctors);
  InitMap(env, *ctors);
  InitProgram(env, *ctors);
  InitLink(env, *ctors);
  InitRingBuffer(env, *ctors);

  exports.Set("openObject", Napi::Function::New(env, OpenObject, "openObject"));
  exports.Set("openPinnedMap", Napi::Function::New(env, OpenPinnedMap, "openPinnedMap"));
  exports.Set("openPinnedLink", Napi::Function::New(env, OpenPinnedLink, "openPinnedLink"));
  exports.Set("unpin", Napi::Function::New(env, Unpin, "unpin"));
  exports.Set("ringBuffer", Napi::Function::New(env, NewRingBuffer, "ringBuffer"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
  exports.Set("ifNameToIndex", Napi::Function::New(env, IfNameToIndex, "ifNameToIndex"));
  exports.Set("withNetns", Napi::Function::New(env, WithNetns, "withNetns"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  return exports;
}

}  // namespace

}  // namespace xvs

using xvs::Init;
NODE_API_MODULE(xvs_native, Init)
