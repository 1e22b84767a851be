// BTF lookups that let TypeScript lay out its codecs from the object's own types.
#include "common.h"

#include <bpf/btf.h>

namespace xvs {

namespace {

// A struct or union by name, also when it is only named through a typedef.
const struct btf_type* FindComposite(const struct btf* btf, const std::string& name) {
  for (__u32 kind : {__u32{BTF_KIND_STRUCT}, __u32{BTF_KIND_UNION}, __u32{BTF_KIND_TYPEDEF}}) {
    __s32 id = btf__find_by_name_kind(btf, name.c_str(), kind);
    if (id < 0) continue;
    if (kind == BTF_KIND_TYPEDEF) id = btf__resolve_type(btf, id);
    const struct btf_type* type = id < 0 ? nullptr : btf__type_by_id(btf, id);
    if (type && (btf_is_struct(type) || btf_is_union(type))) return type;
  }
  return nullptr;
}

Napi::Object Member(Napi::Env env, const struct btf* btf, const struct btf_type* type, __u32 i) {
  const struct btf_member* member = btf_members(type) + i;
  const char* name = btf__name_by_offset(btf, member->name_off);
  __s64 size = btf__resolve_size(btf, member->type);
  if (size < 0) ThrowErrno(env, static_cast<int>(-size), std::string("btf__resolve_size(") + name + ")");
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", name);
  result.Set("offsetBits", btf_member_bit_offset(type, i));
  result.Set("bitfieldSize", btf_member_bitfield_size(type, i));
  result.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  return result;
}

// Without kflag BTF enumerators are unsigned (clang before 15 never sets it).
double EnumValue(const struct btf_type* type, __u32 i) {
  if (btf_is_enum64(type)) {
    __u64 value = btf_enum64_value(btf_enum64(type) + i);
    return btf_kflag(type) ? static_cast<double>(static_cast<__s64>(value)) : static_cast<double>(value);
  }
  __s32 value = btf_enum(type)[i].val;
  return btf_kflag(type) ? static_cast<double>(value) : static_cast<double>(static_cast<__u32>(value));
}

__u32 EnumNameOff(const struct btf_type* type, __u32 i) {
  return btf_is_enum64(type) ? btf_enum64(type)[i].name_off : btf_enum(type)[i].name_off;
}

// An enum (32 or 64 bit) by name, also when it is only named through a typedef.
const struct btf_type* FindEnum(const struct btf* btf, const std::string& name) {
  for (__u32 kind : {__u32{BTF_KIND_ENUM}, __u32{BTF_KIND_ENUM64}, __u32{BTF_KIND_TYPEDEF}}) {
    __s32 id = btf__find_by_name_kind(btf, name.c_str(), kind);
    if (id < 0) continue;
    if (kind == BTF_KIND_TYPEDEF) id = btf__resolve_type(btf, id);
    const struct btf_type* type = id < 0 ? nullptr : btf__type_by_id(btf, id);
    if (type && btf_is_any_enum(type)) return type;
  }
  return nullptr;
}

}  // namespace

Napi::Value BtfEnum(Napi::Env env, const struct btf* btf, const std::string& name) {
  const struct btf_type* type = btf ? FindEnum(btf, name) : nullptr;
  if (!type) return env.Null();
  Napi::Array result = Napi::Array::New(env, btf_vlen(type));
  for (__u32 i = 0; i < btf_vlen(type); i++) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", btf__name_by_offset(btf, EnumNameOff(type, i)));
    entry.Set("value", EnumValue(type, i));
    result.Set(i, entry);
  }
  return result;
}

Napi::Value BtfStruct(Napi::Env env, const struct btf* btf, const std::string& name) {
  const struct btf_type* type = btf ? FindComposite(btf, name) : nullptr;
  if (!type) return env.Null();
  Napi::Array members = Napi::Array::New(env, btf_vlen(type));
  for (__u32 i = 0; i < btf_vlen(type); i++) members.Set(i, Member(env, btf, type, i));
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", name);
  result.Set("size", type->size);
  result.Set("members", members);
  return result;
}

Napi::Value BtfDatasec(Napi::Env env, const struct btf* btf, const std::string& name) {
  __s32 id = btf ? btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_DATASEC) : -1;
  if (id < 0) return env.Null();
  const struct btf_type* type = btf__type_by_id(btf, id);
  const struct btf_var_secinfo* vars = btf_var_secinfos(type);
  Napi::Array result = Napi::Array::New(env, btf_vlen(type));
  for (__u32 i = 0; i < btf_vlen(type); i++) {
    const struct btf_type* var = btf__type_by_id(btf, vars[i].type);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", btf__name_by_offset(btf, var->name_off));
    entry.Set("offset", vars[i].offset);
    entry.Set("size", vars[i].size);
    result.Set(i, entry);
  }
  return result;
}

}  // namespace xvs
