namespace Disagg.Tests.Reliability;

/// <summary>What a <see cref="FaultInjectingKvTransport"/> does to one transfer.</summary>
internal enum TransferFault
{
    /// <summary>The transfer goes through.</summary>
    None,

    /// <summary>The link drops mid-transfer: part of the KV is copied, then the transfer fails with <see cref="KvTransferException"/>.</summary>
    Drop,

    /// <summary>The transfer never completes on its own: it waits until cancelled (by the caller, or by a lease or timeout).</summary>
    Stall,
}
