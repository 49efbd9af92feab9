"""placeholder"""
from fastapi import APIRouter, FastAPI

router = APIRouter()


def install_console(app: FastAPI) -> None:
    return None
