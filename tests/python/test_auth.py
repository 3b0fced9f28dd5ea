"""Auth through the real binary with clients in other languages: grpcio sees
the refusals and their details, an admin key from `wizdata keys create`
writes, and PyJWT verifies our tokens against the published JWKS."""

import json

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import buf_curl


@pytest.fixture(scope="module")
def auth(stubs):
    from wizdata.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
    from wizdata.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
    return auth_service_pb2, auth_service_pb2_grpc, registry_service_pb2, registry_service_pb2_grpc


def create_symbol(mesh, auth, ticker, metadata=()):
    _, _, registry_pb2, registry_grpc = auth
    with grpc.insecure_channel(mesh.target) as channel:
        registry = registry_grpc.RegistryServiceStub(channel)
        symbol = registry_pb2.Symbol(ticker=ticker, name=f"{ticker} Inc", exchange="NYSE", asset_class=1, currency="USD")
        return registry.CreateSymbol(registry_pb2.CreateSymbolRequest(symbol=symbol), metadata=metadata, timeout=10)


def error_info(error):
    info = error_details_pb2.ErrorInfo()
    status = rpc_status.from_call(error)
    assert any(packed.Unpack(info) for packed in status.details), status.details
    return info


def test_a_write_without_credentials_is_unauthenticated_with_the_scope_it_needs(mesh, auth):
    with pytest.raises(grpc.RpcError) as refused:
        create_symbol(mesh, auth, "PYANON")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(refused.value)
    assert (info.reason, info.metadata["required_scope"]) == ("CREDENTIALS_MISSING", "registry:write")


def test_the_admin_key_from_the_cli_writes(mesh, auth):
    answer = create_symbol(mesh, auth, "PYADMIN", metadata=[("authorization", f"Bearer {mesh.admin_key}")])
    assert answer.symbol.ticker == "PYADMIN"


def test_a_forged_token_is_refused(mesh, auth):
    forged = jwt.encode({"sub": "admin", "scope": "registry:write"}, "a-guessed-shared-secret-of-32-bytes", algorithm="HS256",
                        headers={"kid": "sig_guess"})
    with pytest.raises(grpc.RpcError) as refused:
        create_symbol(mesh, auth, "PYFORGED", metadata=[("authorization", f"Bearer {forged}")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(refused.value).reason == "TOKEN_ALGORITHM_REJECTED"


def test_tokens_verify_with_pyjwt_against_the_published_jwks(mesh, auth):
    auth_pb2, auth_grpc, _, _ = auth
    with grpc.insecure_channel(mesh.target) as channel:
        stub = auth_grpc.AuthServiceStub(channel)
        token = stub.ExchangeApiKey(auth_pb2.ExchangeApiKeyRequest(api_key=mesh.admin_key), timeout=10).access_token
        jwks = stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=10)
    kid = jwt.get_unverified_header(token)["kid"]
    published = next(key for key in jwks.keys if key.kid == kid)
    key = jwt.PyJWK({"kty": published.kty, "crv": published.crv, "x": published.x, "kid": published.kid,
                     "alg": published.alg, "use": published.use})
    claims = jwt.decode(token, key, algorithms=["EdDSA"], issuer="wizdata-auth")
    assert claims["sub"] == "admin"
    assert "registry:write" in claims["scope"].split()
    assert claims["tier"] == "internal"
    assert claims["exp"] > claims["iat"]


def test_buf_curl_asks_who_am_i_with_a_key(mesh):
    me = json.loads(buf_curl(f"{mesh.url}/wizdata.auth.v1.AuthService/WhoAmI", key=mesh.admin_key))
    assert (me["subject"], me["tier"]) == ("admin", "TIER_INTERNAL")
    anonymous = json.loads(buf_curl(f"{mesh.url}/wizdata.auth.v1.AuthService/WhoAmI"))
    assert anonymous["anonymous"] is True and "marketdata:read" in anonymous["scopes"]
