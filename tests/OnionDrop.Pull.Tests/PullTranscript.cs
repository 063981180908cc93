using System.Text;
using OnionDrop.Storage;

namespace OnionDrop.Pull.Tests;

/// <summary>What `oniondrop pull` sends to a fetch, counted in bytes, for relays that cut a session at a chosen point.</summary>
internal static class PullTranscript
{
    /// <summary>
    /// The bytes sent to a fetch of 100 <paramref name="listed"/> blobs up to the middle of the 99th: greeting, list, then
    /// the blobs as asked for (in list order). fetch acknowledges its first 64 blobs once it holds them, when it has asked
    /// for 96 (its window is 32): the server records those acknowledgements, and says ACKED, before it sends the 97th.
    /// Cut there, the server has deleted 64 blobs that fetch holds, and half a blob is in flight.
    /// </summary>
    public static long ToTheMiddleOfThe99thBlob(IReadOnlyList<SubmissionRecord> listed)
    {
        static int Ascii(string line) => Encoding.ASCII.GetByteCount(line + "\n");
        return Ascii(PullProtocol.Greeting) + Ascii($"WAITING {listed.Count} {listed.Sum(r => r.Size)}")
               + listed.Sum(r => Ascii($"ITEM {r.Id} {r.Size} {r.Sha256Hex}"))
               + listed.Take(98).Sum(r => Ascii($"BLOB {r.Id} {r.Size} {r.Sha256Hex}") + r.Size)
               + listed.Take(64).Sum(r => Ascii($"ACKED {r.Id}"))
               + Ascii($"BLOB {listed[98].Id} {listed[98].Size} {listed[98].Sha256Hex}") + listed[98].Size / 2;
    }
}
