#include "gridnode/crypto/random.hpp"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include <algorithm>

#include "internal.hpp"

namespace gridnode::crypto {

// Members in dependency order: the DRBG points at the entropy context, so it is freed first.
struct Random::State {
  State() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
  }
  ~State() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
};

Random::Random(std::unique_ptr<State> state) : state_(std::move(state)) {}

Random::~Random() = default;

platform::Result<std::unique_ptr<Random>> Random::create(std::string_view personalization) {
  auto state = std::make_unique<State>();
  // mbedtls_entropy_init registered the platform source (getrandom, else /dev/urandom).
  int rc = mbedtls_ctr_drbg_seed(&state->drbg, mbedtls_entropy_func, &state->entropy,
                                 reinterpret_cast<const unsigned char*>(personalization.data()),
                                 personalization.size());
  if (rc != 0) {
    return fail_mbedtls(rc,
                        "mbedtls_ctr_drbg_seed: cannot seed the random generator from the "
                        "OS entropy source");
  }
  return std::unique_ptr<Random>(new Random(std::move(state)));
}

int Random::rng(void* self, unsigned char* out, std::size_t len) {
  auto* random = static_cast<Random*>(self);
  // mbedtls_ctr_drbg_random serves at most MBEDTLS_CTR_DRBG_MAX_REQUEST bytes per call.
  while (len > 0) {
    std::size_t n = std::min<std::size_t>(len, MBEDTLS_CTR_DRBG_MAX_REQUEST);
    int rc = mbedtls_ctr_drbg_random(&random->state_->drbg, out, n);
    if (rc != 0) {
      return rc;
    }
    out += n;
    len -= n;
  }
  return 0;
}

platform::Result<void> Random::fill(std::span<std::uint8_t> out) {
  int rc = rng(this, out.data(), out.size());
  if (rc != 0) {
    return fail_mbedtls(rc, "mbedtls_ctr_drbg_random");
  }
  return {};
}

}  // namespace gridnode::crypto
