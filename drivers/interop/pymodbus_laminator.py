#!/usr/bin/env python3
"""An independent Modbus RTU slave for hallctl's interop test, written with pymodbus (3.11.x).

It serves the register map of drivers/PROTOCOL-laminator.md for several unit addresses on one
serial port, from the document alone (no code shared with hallctl's own simulator):
  input registers 0-14: state, temperature (0.1 C), speed, patch count (hi, lo), fault,
                        patch read sequence, last patch serial (16 ASCII bytes, 8 registers)
  holding registers 0-1: temperature set-point (0.1 C), speed set-point (mm/s)
  coils 0-3: start, stop, feed, fault reset

Usage: pymodbus_laminator.py [--read SERIAL ...] PORT UNIT [UNIT ...]
  --read SERIAL   the patch reader reads SERIAL on the next feed (of any unit), whatever patch was
                  fed; repeat for the following feeds, in order. After them (or without any), a
                  unit reads the next serial of its own roll (0041200, 0041201, ...; the next unit
                  0141200, ...). This is how a test makes the device read another patch than the
                  one the controller's operator scanned.
Prints "ready" on stdout when it serves.
"""
import asyncio
import logging
import sys

from pymodbus import FramerType, pymodbus_apply_logging_config
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncSerialServer

IDLE, WARMING, READY, RUNNING, FAULTED = 0, 1, 2, 3, 4


def serial_regs(s):
    b = s.encode("ascii")[:16].ljust(16, b"\0")
    return [(b[i] << 8) | b[i + 1] for i in range(0, 16, 2)]


class Coils(ModbusSequentialDataBlock):
    """Command coils: writing 1 acts on the unit's input registers, like the device would."""

    def __init__(self, unit):
        # pymodbus device contexts add 1 to every protocol address, so block address 1 is
        # protocol address 0.
        super().__init__(1, [False] * 4)
        self.unit = unit

    def setValues(self, address, values):
        super().setValues(address, values)
        for offset, on in enumerate(values):
            if on:
                self.unit.command(address - 1 + offset)


class Unit:
    def clear_coil_later(self, coil):
        # The device clears a command coil when the action is done, after it has echoed the
        # write (clearing it inside the write would make pymodbus echo the cleared value).
        asyncio.get_running_loop().call_later(0.05, self.coils.values.__setitem__, coil, False)

    def __init__(self, first_patch, reads):
        self.next_patch = first_patch
        self.reads = reads
        self.inputs = ModbusSequentialDataBlock(
            1, [IDLE, 221, 0, 0, 0, 0, 0] + serial_regs("")
        )
        self.holding = ModbusSequentialDataBlock(1, [1350, 40])
        self.coils = Coils(self)
        self.context = ModbusDeviceContext(
            di=ModbusSequentialDataBlock(1, [False] * 4),
            co=self.coils,
            hr=self.holding,
            ir=self.inputs,
        )

    def reg(self, i):
        return self.inputs.getValues(1 + i, 1)[0]

    def set_reg(self, i, v):
        self.inputs.setValues(1 + i, [v & 0xFFFF])

    def command(self, coil):
        if coil == 0:  # start: this simple device is at temperature at once
            self.set_reg(1, self.holding.getValues(1, 1)[0])
            self.set_reg(0, READY)
        elif coil == 1:  # stop
            self.set_reg(0, IDLE)
            self.clear_coil_later(0)
            self.clear_coil_later(1)
        elif coil == 2:  # feed one booklet and one patch
            count = (self.reg(3) << 16 | self.reg(4)) + 1
            self.set_reg(3, count >> 16)
            self.set_reg(4, count)
            self.set_reg(6, self.reg(6) + 1)
            if self.reads:
                self.inputs.setValues(8, serial_regs(self.reads.pop(0)))
            else:
                self.inputs.setValues(8, serial_regs("%07d" % self.next_patch))
                self.next_patch += 1
            self.clear_coil_later(2)
        elif coil == 3:  # fault reset
            self.set_reg(5, 0)
            self.set_reg(0, IDLE)
            self.clear_coil_later(3)


async def main():
    # The test polls an absent unit on purpose; pymodbus logs each such request as an error.
    pymodbus_apply_logging_config(logging.CRITICAL)
    args = sys.argv[1:]
    reads = []
    while "--read" in args:
        i = args.index("--read")
        reads.append(args[i + 1])
        del args[i : i + 2]
    port = args[0]
    ids = [int(a) for a in args[1:]]
    units = {uid: Unit(41200 + 100000 * k, reads).context for k, uid in enumerate(ids)}
    context = ModbusServerContext(devices=units, single=False)
    print("ready", flush=True)
    await StartAsyncSerialServer(
        context=context, port=port, framer=FramerType.RTU, baudrate=115200
    )


if __name__ == "__main__":
    asyncio.run(main())
