// NativeMap: one map fd, owned, with element and batch operations.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace xvs {

namespace {

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

using LookupBatchFn = int (*)(int, void*, void*, void*, void*, __u32*,
                              const struct bpf_map_batch_opts*);

class Map : public Napi::ObjectWrap<Map> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMap",
                       {
                           InstanceAccessor<&Map::Name>("name"),
                           InstanceAccessor<&Map::Fd>("fd"),
                           InstanceAccessor<&Map::Type>("type"),
                           InstanceAccessor<&Map::KeySize>("keySize"),
                           InstanceAccessor<&Map::ValueSize>("valueSize"),
                           InstanceAccessor<&Map::MaxEntries>("maxEntries"),
                           InstanceAccessor<&Map::MapFlags>("mapFlags"),
                           InstanceMethod<&Map::Lookup>("lookup"),
                           InstanceMethod<&Map::Update>("update"),
                           InstanceMethod<&Map::Delete>("delete"),
                           InstanceMethod<&Map::NextKey>("nextKey"),
                           InstanceMethod<&Map::LookupBatch>("lookupBatch"),
                           InstanceMethod<&Map::LookupAndDeleteBatch>("lookupAndDeleteBatch"),
                           InstanceMethod<&Map::UpdateBatch>("updateBatch"),
                           InstanceMethod<&Map::DeleteBatch>("deleteBatch"),
                           InstanceMethod<&Map::Pin>("pin"),
                           InstanceMethod<&Map::Close>("close"),
                       });
  }

  explicit Map(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Map>(info) {
    const HandleInit& init = TakeHandleInit(info, "NativeMap");
    struct bpf_map_info mapInfo = {};
    __u32 length = sizeof(mapInfo);
    int err = bpf_obj_get_info_by_fd(init.fd, &mapInfo, &length);
    if (err < 0) {
      close(init.fd);
      ThrowErrno(info.Env(), -err, "bpf_obj_get_info_by_fd(map " + init.name + ")");
    }
    fd_.Reset(init.fd);
    // The kernel keeps 15 characters of a name; libbpf knows the whole one.
    name_ = init.name.empty() ? mapInfo.name : init.name;
    type_ = mapInfo.type;
    keySize_ = mapInfo.key_size;
    valueSize_ = mapInfo.value_size;
    maxEntries_ = mapInfo.max_entries;
    mapFlags_ = mapInfo.map_flags;
    valueBytes_ = valueSize_;
    if (IsPerCpu(type_)) {
      int cpus = libbpf_num_possible_cpus();
      Check(info.Env(), cpus, "libbpf_num_possible_cpus");
      valueBytes_ = static_cast<size_t>(cpus) * ((valueSize_ + 7) / 8 * 8);
    }
  }


  int OpenFd(Napi::Env env) const { return fd_.Open(env, "map " + name_); }

 private:
  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }
  Napi::Value Type(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), type_); }
  Napi::Value KeySize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), keySize_);
  }
  Napi::Value ValueSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), valueSize_);
  }
  Napi::Value MaxEntries(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), maxEntries_);
  }
  Napi::Value MapFlags(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), mapFlags_);
  }

  std::string Call(const char* call) const { return std::string(call) + "(" + name_ + ")"; }

  // The kernel reads exactly keySize/valueBytes bytes behind each pointer we pass.
  void CheckLength(Napi::Env env, size_t actual, size_t expected, const char* what) const {
    if (actual != expected) {
      ThrowError(env, EINVAL,
                 "map " + name_ + ": " + what + " is " + std::to_string(actual) +
                     " bytes, expected " + std::to_string(expected));
    }
  }

  Napi::Buffer<uint8_t> KeyArg(const Napi::CallbackInfo& info, size_t i) const {
    Napi::Buffer<uint8_t> key = BufferArg(info, i, "key");
    CheckLength(info.Env(), key.Length(), keySize_, "key");
    return key;
  }

  size_t TokenSize() const { return std::max<size_t>(keySize_, 8); }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    Napi::Buffer<uint8_t> key = KeyArg(info, 0);
    Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, valueBytes_);
    int err = bpf_map_lookup_elem(fd, key.Data(), value.Data());
    if (err == -ENOENT) return env.Null();
    Check(env, err, Call("bpf_map_lookup_elem"));
    return value;
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    Napi::Buffer<uint8_t> key = KeyArg(info, 0);
    Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
    CheckLength(env, value.Length(), valueBytes_, "value");
    Check(env, bpf_map_update_elem(fd, key.Data(), value.Data(), U32Arg(info, 2, "flags")),
          Call("bpf_map_update_elem"));
    return env.Undefined();
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    Napi::Buffer<uint8_t> key = KeyArg(info, 0);
    int err = bpf_map_delete_elem(fd, key.Data());
    if (err == -ENOENT) return Napi::Boolean::New(env, false);
    Check(env, err, Call("bpf_map_delete_elem"));
    return Napi::Boolean::New(env, true);
  }

  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    const void* key = IsNullish(info[0]) ? nullptr : KeyArg(info, 0).Data();
    Napi::Buffer<uint8_t> next = Napi::Buffer<uint8_t>::New(env, keySize_);
    int err = bpf_map_get_next_key(fd, key, next.Data());
    if (err == -ENOENT) return env.Null();
    Check(env, err, Call("bpf_map_get_next_key"));
    return next;
  }

  // ENOENT means the walk reached the end: what was read still counts.
  Napi::Value Batch(const Napi::CallbackInfo& info, LookupBatchFn fn, const char* call) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    std::vector<uint8_t> in;
    if (!IsNullish(info[0])) {
      Napi::Buffer<uint8_t> token = BufferArg(info, 0, "token");
      CheckLength(env, token.Length(), TokenSize(), "batch token");
      in.assign(token.Data(), token.Data() + token.Length());
    }
    __u32 count = std::min(U32Arg(info, 1, "count"), maxEntries_);
    std::vector<uint8_t> out(TokenSize());
    std::vector<uint8_t> keys(static_cast<size_t>(count) * keySize_);
    std::vector<uint8_t> values(static_cast<size_t>(count) * valueBytes_);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = fn(fd, in.empty() ? nullptr : in.data(), out.data(), keys.data(), values.data(),
                 &count, &opts);
    bool done = err == -ENOENT;
    if (err < 0 && !done) ThrowErrno(env, -err, Call(call));

    Napi::Object result = Napi::Object::New(env);
    result.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), count * keySize_));
    result.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), count * valueBytes_));
    result.Set("count", Napi::Number::New(env, count));
    result.Set("next", done ? env.Null() : Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size()));
    return result;
  }

  Napi::Value LookupBatch(const Napi::CallbackInfo& info) {
    return Batch(info, bpf_map_lookup_batch, "bpf_map_lookup_batch");
  }

  Napi::Value LookupAndDeleteBatch(const Napi::CallbackInfo& info) {
    return Batch(info, bpf_map_lookup_and_delete_batch, "bpf_map_lookup_and_delete_batch");
  }

  // Checks that `count` elements fit in a keys (and values) Buffer argument.
  __u32 CountArg(const Napi::CallbackInfo& info, size_t i, size_t available, size_t each) const {
    __u32 count = U32Arg(info, i, "count");
    if (static_cast<size_t>(count) * each > available) {
      ThrowError(info.Env(), EINVAL,
                 "map " + name_ + ": " + std::to_string(count) + " elements do not fit in " +
                     std::to_string(available) + " bytes");
    }
    return count;
  }

  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
    Napi::Buffer<uint8_t> values = BufferArg(info, 1, "values");
    __u32 count = CountArg(info, 2, keys.Length(), keySize_);
    CountArg(info, 2, values.Length(), valueBytes_);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    opts.elem_flags = U32Arg(info, 3, "flags");
    Check(env, bpf_map_update_batch(fd, keys.Data(), values.Data(), &count, &opts),
          Call("bpf_map_update_batch"));
    return Napi::Number::New(env, count);
  }

  Napi::Value DeleteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
    __u32 count = CountArg(info, 1, keys.Length(), keySize_);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    Check(env, bpf_map_delete_batch(fd, keys.Data(), &count, &opts), Call("bpf_map_delete_batch"));
    return Napi::Number::New(env, count);
  }

  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = OpenFd(env);
    std::string path = StringArg(info, 0, "path");
    Check(env, bpf_obj_pin(fd, path.c_str()), "bpf_obj_pin(" + name_ + ", " + path + ")");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    fd_.Reset();
    return info.Env().Undefined();
  }

  OwnedFd fd_;
  std::string name_;
  uint32_t type_ = 0;
  uint32_t keySize_ = 0;
  uint32_t valueSize_ = 0;
  uint32_t maxEntries_ = 0;
  uint32_t mapFlags_ = 0;
  size_t valueBytes_ = 0;
};

}  // namespace

void InitMap(Napi::Env env, Constructors& ctors) { ctors.map = Napi::Persistent(Map::Define(env)); }

Napi::Object NewMap(Napi::Env env, int fd, const std::string& name) {
  HandleInit init{fd, name, 0};
  return Ctors(env).map.New({Napi::External<HandleInit>::New(env, &init)});
}

int MapFd(Napi::Value value) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(Ctors(env).map.Value())) {
    throw Napi::TypeError::New(env, "map must be a NativeMap");
  }
  return Map::Unwrap(value.As<Napi::Object>())->OpenFd(env);
}

Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  Check(env, fd, "bpf_obj_get(" + path + ")");
  if (!FdInfoHas(fd, "map_type:")) {
    close(fd);
    ThrowError(env, EINVAL, path + " is not a BPF map");
  }
  return NewMap(env, fd, "");
}

}  // namespace xvs
