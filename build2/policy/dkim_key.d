build2/policy/dkim_key.o: src/policy/dkim_key.c src/policy/dkim_int.h \
 src/policy/dkim_sign.h src/core/base64.h src/core/str.h
src/policy/dkim_int.h:
src/policy/dkim_sign.h:
src/core/base64.h:
src/core/str.h:
