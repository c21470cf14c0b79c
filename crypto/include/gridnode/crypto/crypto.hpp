#pragma once

// All of gridnode::crypto: mbedTLS 2.28 behind small RAII types. No mbedTLS header is included
// by any of these; the contexts live in crypto/src.
#include "gridnode/crypto/error.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/crypto/x509.hpp"
