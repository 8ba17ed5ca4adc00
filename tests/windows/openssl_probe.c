/* Print the folders that the linked OpenSSL has built in, then initialize
 * it and report whether SHA-256 can be fetched.
 *
 * Usage: openssl_probe [--load-config]
 *
 * With --load-config, OpenSSL loads its config file as in any program
 * that does not opt out. Without it, OpenSSL skips the file as in the
 * agent (src/main.c). test_openssl_config.sh plants a config that leaves
 * no digest available, so the last line shows whether it was read. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

int main(int argc, char **argv)
{
  int load_config = argc > 1 && strcmp(argv[1], "--load-config") == 0;

  printf("%s\n", OpenSSL_version(OPENSSL_DIR));
  printf("%s\n", OpenSSL_version(OPENSSL_ENGINES_DIR));
  printf("%s\n", OpenSSL_version(OPENSSL_MODULES_DIR));

  uint64_t flags =
      load_config ? OPENSSL_INIT_LOAD_CONFIG : OPENSSL_INIT_NO_LOAD_CONFIG;
  if (OPENSSL_init_crypto(flags, NULL) != 1)
    printf("init failed\n");

  EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  printf("sha256 %s\n", sha256 != NULL ? "available" : "unavailable");
  EVP_MD_free(sha256);
  return 0;
}
