using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class PullCommand
{
    public static Command Create()
    {
        var command = new Command("pull", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop pull: not implemented yet"); return 70; });
        return command;
    }
}
