build2/cli/cli.o: src/cli/cli.c src/cli/cli.h src/cli/cli_dns.h \
 src/auth/password.h src/auth/sasl.h src/core/config.h src/mail/address.h \
 src/policy/dkim_sign.h src/store/store.h
src/cli/cli.h:
src/cli/cli_dns.h:
src/auth/password.h:
src/auth/sasl.h:
src/core/config.h:
src/mail/address.h:
src/policy/dkim_sign.h:
src/store/store.h:
