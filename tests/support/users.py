"""The users the tests act as, one name per id.

ALICE and BOB are plain ids, as a shared-secret deployment's users may have. Better Auth gives
its users random 32-character ids; the tests of Better Auth-shaped tokens use those.
"""

ALICE = "alice"
BOB = "bob"
BETTER_AUTH_ALICE = "J1yYF2rzLWP3f9tH0m6ey0QDmyZ7Qu7L"
BETTER_AUTH_BOB = "x8Kq2LbVwN4pR7sT1uY3zA5cD6eF9gHj"
